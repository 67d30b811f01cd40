#!/usr/bin/env python
"""Time per loss+gradient evaluation of the engine against the two formulations the seeds show, in ONE run.

  python bench/speed.py                       # sizes 256 and 512, tf-eager-blog, 5 rounds
  python bench/speed.py --sizes 256,512,768 --rounds 7
  python bench/speed.py --levers              # also: the engine under each speed lever at --lever-sizes (512),
                                              # one subprocess per lever and round

Same machine, same size (content, style and image all SIZE × SIZE), same synthetic VGG19 weights: random
He-scaled kernels written once in the canonical Keras HDF5 layout (tests/support.py's save_keras_h5), read by the
engine through weights.load_weights and by Keras through VGG19(weights=PATH).

  engine     legacy_nst.engine.level.Transfer(recipe, content, [style], params, device="cpu") for --recipe (its
             optimizer set to lbfgs), timed through the L-BFGS Evaluator exactly as scipy drives it:
             evaluator.loss(x) then evaluator.grads(x) on the float64 vector scipy hands over.
  seed 000   the TensorFlow blog's eager formulation as seed 000 writes it: Keras VGG19, a Model to the five
             style layers and block5_conv2, the image a tf.Variable in Caffe space, compute_loss (gram / n,
             reduce_mean terms, weights 1e-2 / 1e3) and compute_grads under tf.GradientTape.
  seed 000 @tf.function   the same compute_grads wrapped in tf.function (for reference only, no target).
  seed 003   the Keras example as seed 003 writes it: content and style held as variables, concatenated with
             the combination image into ONE batch of 3 that runs through VGG19 at every evaluation; the
             content, style and total-variation losses of the post; loss and gradient from one compiled
             function (K.function there, tf.function here: Keras 3 has no K.function) and the post's
             Evaluator (loss(x) computes both, grads(x) returns the copy).

Measurement: a warm-up evaluation each, then --rounds rounds; each round runs, in this order, numpy matmul,
engine, seed 000, numpy, engine, seed 000 @tf.function, numpy, engine, seed 003, so every formulation is
measured between engine evaluations and the machine's load hits all of them alike. Reported: median wall
seconds per evaluation (and process CPU seconds: the other workers sharing the CPU inflate wall time, not
CPU time), ratios of medians, and the engine's effective GFLOP/s = conv FLOPs of one forward pass plus the
input gradient (2·H·W·9·Cin·Cout each, every conv up to the recipe's deepest layer; the backward pass needs
all of them) / median seconds, next to numpy's float32 matmul rate (2·n³ / median seconds, n = --matmul-n)
measured in the same rounds. Peak resident memory of the engine is measured alone, in a subprocess per size
(the kernel's VmHWM, which is getrusage's ru_maxrss without the value inherited over execve), so Keras and the
eager models do not count.

Writes --json (default bench/results/speed.json) and prints a table.
"""
import argparse
import dataclasses
import gc
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support.py: the synthetic weight file

STYLE_LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
CONTENT_LAYERS = ["block5_conv2"]
GIB = 1024**3
TARGETS = {"size": 512, "vs_eager": 0.45, "vs_batch3": 0.30, "vs_matmul": 0.85, "rss_bytes": 2 * GIB}
FORMULATIONS = ("engine", "eager", "function", "batch3")
LABELS = {"engine": "engine ({recipe}, L-BFGS Evaluator)", "eager": "seed 000: eager GradientTape",
          "function": "seed 000 under tf.function (info)", "batch3": "seed 003: batch of 3, tf.function"}


# ------------------------------------------------------------------------------------------------ inputs

def test_images(size):
    """Content and style (float32 RGB 0..255, size × size): the package's own drawn pair, resized."""
    from legacy_nst import images

    content, style = images.demo_pair(size)
    return (images.resize(content, (size, size), "lanczos"), images.resize(style, (size, size), "lanczos"))


def write_weights(directory, seed=0):
    """Full synthetic VGG19 in the canonical Keras HDF5 layout, under the canonical file name."""
    from support import save_keras_h5, synthetic_weights

    from legacy_nst.vgg import weights

    path = Path(directory) / weights.CANONICAL["vgg19"].filename
    save_keras_h5(path, "vgg19", synthetic_weights("vgg19", seed=seed))
    return path


def engine_recipe(name, size):
    from legacy_nst import recipes

    return dataclasses.replace(recipes.get(name), optimizer="lbfgs", size=size).check()


def conv_flops(network, deepest, height, width):
    """FLOPs of one forward pass through every conv up to `deepest` (2·H·W·9·Cin·Cout each, SAME padding,
    each block after the first halved by a 2 × 2 VALID pool). The input gradient costs the same again."""
    from legacy_nst.vgg.architecture import conv_shapes

    total, h, w = 0, height, width
    for name, ((kh, kw, cin, cout), _) in conv_shapes(network).items():
        if name.endswith("_conv1") and not name.startswith("block1"):
            h, w = h // 2, w // 2
        total += 2 * h * w * kh * kw * cin * cout
        if name == deepest:
            return total
    raise ValueError(deepest)


# ---------------------------------------------------------------------------------------- formulations

class Engine:
    def __init__(self, recipe, h5, content, style, device="cpu"):
        from legacy_nst.engine.level import Transfer
        from legacy_nst.vgg import weights

        params = weights.load_weights(h5, recipe.network, recipe.layers)
        self.transfer = Transfer(recipe, content, [style], params, device=device)
        self.evaluator = self.transfer.optimiser.evaluator
        self.x = content.astype(np.float64).ravel()  # what scipy's fmin_l_bfgs_b hands the Evaluator

    def __call__(self):
        loss = self.evaluator.loss(self.x)
        self.evaluator.grads(self.x)
        return loss

    def close(self):
        self.transfer.close()


def seed000(h5, content, style, compiled=False):
    """Seed 000's model, losses and compute_grads, as written (tf.keras names; Keras 3 underneath)."""
    import tensorflow as tf

    models = tf.keras.models
    num_content_layers, num_style_layers = len(CONTENT_LAYERS), len(STYLE_LAYERS)

    def load_and_process_img(img):
        return tf.keras.applications.vgg19.preprocess_input(np.expand_dims(img, axis=0).copy())

    def get_model():
        vgg = tf.keras.applications.vgg19.VGG19(include_top=False, weights=str(h5))
        vgg.trainable = False
        style_outputs = [vgg.get_layer(name).output for name in STYLE_LAYERS]
        content_outputs = [vgg.get_layer(name).output for name in CONTENT_LAYERS]
        model_outputs = style_outputs + content_outputs
        return models.Model(vgg.input, model_outputs)

    def get_content_loss(base_content, target):
        return tf.reduce_mean(tf.square(base_content - target))

    def gram_matrix(input_tensor):
        channels = int(input_tensor.shape[-1])
        a = tf.reshape(input_tensor, [-1, channels])
        n = tf.shape(a)[0]
        gram = tf.matmul(a, a, transpose_a=True)
        return gram / tf.cast(n, tf.float32)

    def get_style_loss(base_style, gram_target):
        height, width, channels = base_style.get_shape().as_list()
        gram_style = gram_matrix(base_style)
        return tf.reduce_mean(tf.square(gram_style - gram_target))

    def get_feature_representations(model, content_image, style_image):
        style_outputs = model(style_image)
        content_outputs = model(content_image)
        style_features = [style_layer[0] for style_layer in style_outputs[:num_style_layers]]
        content_features = [content_layer[0] for content_layer in content_outputs[num_style_layers:]]
        return style_features, content_features

    def compute_loss(model, loss_weights, init_image, gram_style_features, content_features):
        style_weight, content_weight = loss_weights
        model_outputs = model(init_image)
        style_output_features = model_outputs[:num_style_layers]
        content_output_features = model_outputs[num_style_layers:]
        style_score = 0
        content_score = 0
        weight_per_style_layer = 1.0 / float(num_style_layers)
        for target_style, comb_style in zip(gram_style_features, style_output_features):
            style_score += weight_per_style_layer * get_style_loss(comb_style[0], target_style)
        weight_per_content_layer = 1.0 / float(num_content_layers)
        for target_content, comb_content in zip(content_features, content_output_features):
            content_score += weight_per_content_layer * get_content_loss(comb_content[0], target_content)
        style_score *= style_weight
        content_score *= content_weight
        loss = style_score + content_score
        return loss, style_score, content_score

    def compute_grads(cfg):
        with tf.GradientTape() as tape:
            all_loss = compute_loss(**cfg)
        total_loss = all_loss[0]
        return tape.gradient(total_loss, cfg["init_image"]), all_loss

    model = get_model()
    for layer in model.layers:
        layer.trainable = False
    style_features, content_features = get_feature_representations(
        model, load_and_process_img(content), load_and_process_img(style))
    gram_style_features = [gram_matrix(style_feature) for style_feature in style_features]
    init_image = tf.Variable(load_and_process_img(content), dtype=tf.float32)
    cfg = {"model": model, "loss_weights": (1e-2, 1e3), "init_image": init_image,
           "gram_style_features": gram_style_features, "content_features": content_features}
    step = tf.function(lambda: compute_grads(cfg)) if compiled else (lambda: compute_grads(cfg))

    def evaluate():
        grads, all_loss = step()
        grads.numpy()
        return float(all_loss[0])

    return evaluate


def seed003(h5, content, style):
    """Seed 003's batch-of-3 graph, losses and Evaluator, as written; K.* spelled with the tf ops they are."""
    import tensorflow as tf

    vgg19 = tf.keras.applications.vgg19
    resized_width, resized_height = content.shape[:2]  # the post's load_img(target_size=(w, h)) is (rows, cols)
    content_weight, style_weight, total_variation_weight = 0.025, 1.0, 1.0

    def preprocess_image(img):
        return vgg19.preprocess_input(np.expand_dims(img, axis=0).copy())

    def gram_matrix(x):
        features = tf.reshape(tf.transpose(x, (2, 0, 1)), [tf.shape(x)[2], -1])  # batch_flatten(permute(x))
        return tf.matmul(features, tf.transpose(features))

    def style_loss_per_layer(style, combination):
        S = gram_matrix(style)
        C = gram_matrix(combination)
        channels = 3
        size = resized_width * resized_height
        return tf.reduce_sum(tf.square(S - C)) / (4.0 * (channels**2) * (size**2))

    def total_style_loss(outputs_dict, feature_layers):
        loss = tf.constant(0.0)
        for layer_name in feature_layers:
            layer_features = outputs_dict[layer_name]
            style_reference_features = layer_features[1, :, :, :]
            combination_features = layer_features[2, :, :, :]
            sl = style_loss_per_layer(style_reference_features, combination_features)
            loss += (style_weight / len(feature_layers)) * sl
        return loss

    def content_loss(layer_features):
        base_image_features = layer_features[0, :, :, :]
        combination_features = layer_features[2, :, :, :]
        return tf.reduce_sum(tf.square(combination_features - base_image_features))

    def total_variation_loss(x):
        a = tf.square(x[:, :resized_width - 1, :resized_height - 1, :] - x[:, 1:, :resized_height - 1, :])
        b = tf.square(x[:, :resized_width - 1, :resized_height - 1, :] - x[:, :resized_width - 1, 1:, :])
        return tf.reduce_sum(tf.pow(a + b, 1.25))

    base_image = tf.Variable(preprocess_image(content))  # K.variable
    style_reference_image = tf.Variable(preprocess_image(style))
    model = vgg19.VGG19(weights=str(h5), include_top=False)
    names = CONTENT_LAYERS + STYLE_LAYERS  # outputs_dict, as far as the loss reads it (K.function prunes the rest)
    features = tf.keras.models.Model(model.input, [model.get_layer(n).output for n in names])

    @tf.function(input_signature=[tf.TensorSpec((1, resized_width, resized_height, 3), tf.float32)])
    def f_outputs(combination_image):
        with tf.GradientTape() as tape:
            tape.watch(combination_image)
            input_tensor = tf.concat([base_image, style_reference_image, combination_image], axis=0)
            outputs_dict = dict(zip(names, features(input_tensor)))
            loss = tf.constant(0.0)
            loss += content_weight * content_loss(outputs_dict["block5_conv2"])
            loss += total_style_loss(outputs_dict, STYLE_LAYERS) * style_weight
            loss += total_variation_weight * total_variation_loss(combination_image)
        grads = tape.gradient(loss, combination_image)  # K.gradients(loss, combination_image)
        return [loss, grads]

    def eval_loss_and_grads(x):
        x = x.reshape((1, resized_width, resized_height, 3))
        outs = f_outputs(tf.constant(x, tf.float32))  # a feed converts float64 to the placeholder's float32
        loss_value = outs[0].numpy()
        grad_values = outs[1].numpy().flatten().astype("float64")
        return loss_value, grad_values

    class Evaluator:
        def __init__(self):
            self.loss_value = None
            self.grads_values = None

        def loss(self, x):
            assert self.loss_value is None
            loss_value, grad_values = eval_loss_and_grads(x)
            self.loss_value = loss_value
            self.grad_values = grad_values
            return self.loss_value

        def grads(self, x):
            assert self.loss_value is not None
            grad_values = np.copy(self.grad_values)
            self.loss_value = None
            self.grad_values = None
            return grad_values

    evaluator = Evaluator()
    x = preprocess_image(content).astype(np.float64).flatten()

    def evaluate():
        loss = evaluator.loss(x)
        evaluator.grads(x)
        return float(loss)

    return evaluate


# --------------------------------------------------------------------------------------------- timing

class Matmul:
    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.n = n
        self.a, self.b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
        self.a @ self.b

    def rate(self, repeats=3):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.a @ self.b
            times.append(time.perf_counter() - t0)
        return 2 * self.n**3 / float(np.median(times)) / 1e9


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - w0, time.process_time() - c0, value


def summary(samples):
    wall = [s[0] for s in samples]
    cpu = [s[1] for s in samples]
    return {"wall": wall, "cpu": cpu, "median": float(np.median(wall)), "min": float(np.min(wall)),
            "cpu_median": float(np.median(cpu)), "loss": samples[-1][2] if samples else None}


def peak_rss():
    """This process's peak resident set in bytes. VmHWM is the high-water mark of this process's own memory
    map; getrusage's ru_maxrss is the same number except that Linux carries it over an execve, so a child
    started by a parent that already held 4 GB would report at least that (the Keras models of this bench)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(spec):
    """One engine alone in this process: build, warm up, time `evals` evaluations; peak RSS and the numbers."""
    importlib.import_module("legacy_nst.engine.runtime")  # TensorFlow, quietly: the RSS below is after its import

    after_import = peak_rss()
    for patch in spec.get("patches", []):
        apply_patch(patch)
    recipe = engine_recipe(spec["recipe"], spec["size"])
    content, style = test_images(spec["size"])
    t0 = time.perf_counter()
    engine = Engine(recipe, spec["weights"], content, style)
    build = time.perf_counter() - t0
    samples = [timed(engine) for _ in range(spec.get("warmup", 1) + spec["evals"])][spec.get("warmup", 1):]
    grad = engine.evaluator.grads(engine.x)
    ev = engine.evaluator.evaluation
    feed = {ev.image: engine.x.astype(np.float32).reshape((1,) + engine.evaluator.shape)}
    raw = [timed(lambda: ev.session.run(ev.fetches, feed)) for _ in range(spec["evals"])]
    out = {"spec": spec, "build_seconds": build, **summary(samples), "grad_norm": float(np.linalg.norm(grad)),
           "raw_session_median": float(np.median([r[0] for r in raw])),
           "peak_rss_bytes": peak_rss(), "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "rss_after_import_bytes": after_import}
    print("RESULT " + json.dumps(out), flush=True)


def run_child(spec, env=None):
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child {spec} failed:\n{proc.stderr[-3000:]}")


# -------------------------------------------------------------------------------------------- levers

def apply_patch(name):
    """Undo one kept lever (or set a rejected one) inside a --child, to measure what it is worth (LEVERS)."""
    import tensorflow as tf

    from legacy_nst.engine import level as transfer
    from legacy_nst.engine import network
    from legacy_nst.engine import terms as losses

    if name == "const-weights":  # weights as graph constants, as before
        network._lazy_weight = lambda value, name, flip=False: tf.constant(
            network._flip(value) if flip else value, name=name)
    elif name == "conv2d":  # the forward pass as a Conv2D (TF's gradient), as before
        network._conv3x3 = lambda x, kernel, flipped: tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
    elif name == "tf-gram-gradient":  # TF's own MatMul gradient for the Gram: two matmuls and an AddN
        losses._gram_raw = lambda flat: tf.matmul(flat, flat, transpose_a=True)
    elif name.startswith("config:"):  # session_config overrides, e.g. config:inter=2,intra=1,grappler=off
        options = dict(item.split("=") for item in name[7:].split(","))
        shipped = transfer.session_config

        def session_config(device):
            config = shipped(device)
            if "inter" in options:
                config.inter_op_parallelism_threads = int(options["inter"])
            if "intra" in options:
                config.intra_op_parallelism_threads = int(options["intra"])
            if "per_session" in options:
                config.use_per_session_threads = options["per_session"] == "1"
            if options.get("grappler") == "off":
                config.graph_options.rewrite_options.disable_meta_optimizer = True
            if options.get("jit") == "on":
                config.graph_options.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1
            return config

        transfer.session_config = session_config
    else:
        raise ValueError(f"unknown patch {name!r}")


# (label, patches, environment): every lever the engine keeps is undone once; every rejected one is tried.
BEFORE = ["const-weights", "conv2d", "tf-gram-gradient", "config:inter=2,per_session=0"]
LEVERS = [
    ("engine as shipped", [], {}),
    ("all four kept levers undone (the engine before)", BEFORE, {}),
    ("weights as graph constants, Conv2D forward (before)", ["const-weights", "conv2d"], {}),
    ("weights in variables, Conv2D forward", ["conv2d"], {}),
    ("  + TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1", ["conv2d"], {"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1"}),
    ("TF's own Gram gradient (before)", ["tf-gram-gradient"], {}),
    ("inter_op_parallelism_threads=2 (TF default, before)", ["config:inter=2"], {}),
    ("intra_op_parallelism_threads=1", ["config:intra=1"], {}),
    ("Grappler off", ["config:grappler=off"], {}),
    ("oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)", [], {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("XLA auto-jit on CPU (TF_XLA_FLAGS, global_jit_level)", ["config:jit=on"],
     {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"}),
    ("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1", [], {"TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD": "1"}),
    ("TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1", [], {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1"}),
    ("oneDNN bf16 math (TF_SET_ONEDNN_FPMATH_MODE=BF16)", [], {"TF_SET_ONEDNN_FPMATH_MODE": "BF16"}),
]


def levers(args, h5, size):
    """Each lever in its own subprocess, in interleaved rounds; the shipped engine runs first in each round."""
    chosen = [lever for lever in LEVERS if not args.lever_filter or any(f in lever[0] for f in args.lever_filter)]
    results = {label: [] for label, _, _ in chosen}
    for round_ in range(args.lever_rounds):
        for label, patches, env in chosen:
            spec = {"size": size, "recipe": args.recipe, "weights": str(h5), "evals": args.lever_evals,
                    "warmup": 1, "patches": patches}
            result = run_child(spec, env)
            results[label].append(result)
            print(f"  lever round {round_ + 1}: {label:52s} {result['median']:7.3f} s/eval "
                  f"(cpu {result['cpu_median']:.3f})  peak RSS {result['peak_rss_bytes'] / 2**20:6.0f} MiB", flush=True)
    table = {}
    base = results[chosen[0][0]]
    for label, patches, env in chosen:
        runs = results[label]
        wall = [w for r in runs for w in r["wall"]]
        cpu = [c for r in runs for c in r["cpu"]]
        paired = [np.median(r["wall"]) / np.median(b["wall"]) for r, b in zip(runs, base)]
        table[label] = {"patches": patches, "env": env, "median": float(np.median(wall)),
                        "cpu_median": float(np.median(cpu)), "paired_ratio": float(np.median(paired)),
                        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs), "loss": runs[0]["loss"],
                        "grad_norm": runs[0]["grad_norm"], "build_seconds": float(np.median([r["build_seconds"] for r in runs])),
                        "raw_session_median": float(np.median([r["raw_session_median"] for r in runs]))}
    return table


# ---------------------------------------------------------------------------------------------- main

def measure_size(args, h5, size, matmul):
    import tensorflow as tf

    from legacy_nst.vgg.architecture import deepest_layer

    recipe = engine_recipe(args.recipe, size)
    content, style = test_images(size)
    deepest = deepest_layer(recipe.network, recipe.layers)
    flops = 2 * conv_flops(recipe.network, deepest, size, size)
    seed_flops = 2 * conv_flops("vgg19", "block5_conv2", size, size)
    print(f"\n== {size} × {size}: building (engine to {deepest}: {flops / 1e9:.1f} GFLOP per evaluation)", flush=True)
    runners = {}
    wanted = [f for f in FORMULATIONS if f in args.formulations]
    builds = {}
    for name in wanted:
        t0 = time.perf_counter()
        if name == "engine":
            runners[name] = Engine(recipe, h5, content, style)
        elif name == "eager":
            runners[name] = seed000(h5, content, style)
        elif name == "function":
            runners[name] = seed000(h5, content, style, compiled=True)
        else:
            runners[name] = seed003(h5, content, style)
        for _ in range(args.warmup):
            runners[name]()
        builds[name] = time.perf_counter() - t0
    samples = {name: [] for name in wanted}
    pairs = {name: [] for name in wanted}  # engine seconds ÷ this formulation's, the engine timed just before
    rates = []
    others = [name for name in wanted if name != "engine"] or [None]
    for round_ in range(args.rounds):
        for other in others:
            rates.append(matmul.rate())
            if "engine" in runners:
                samples["engine"].append(timed(runners["engine"]))
            if other is not None:
                samples[other].append(timed(runners[other]))
                if "engine" in runners:
                    pairs[other].append(samples["engine"][-1][0] / samples[other][-1][0])
        line = "  ".join(f"{n} {samples[n][-1][0]:.2f}s" for n in wanted)
        print(f"  round {round_ + 1}/{args.rounds}: {line}  numpy {rates[-1]:.0f} GFLOP/s", flush=True)
    if "engine" in runners:
        runners["engine"].close()
    runners.clear()
    tf.keras.backend.clear_session()
    gc.collect()

    result = {"recipe": recipe.name, "deepest": deepest, "engine_gflop": flops / 1e9, "seed_gflop": seed_flops / 1e9,
              "build_seconds": builds, "numpy_matmul_gflops": rates, "numpy_matmul_median": float(np.median(rates)),
              "formulations": {n: summary(s) for n, s in samples.items()}}
    f = result["formulations"]
    if "engine" in f:
        e = f["engine"]["median"]
        e_rate = flops / e / 1e9
        result["engine_gflops"] = e_rate
        result["engine_vs_matmul"] = e_rate / result["numpy_matmul_median"]
        result["engine_cpu_gflops_per_core"] = flops / f["engine"]["cpu_median"] / 1e9
        for other in ("eager", "function", "batch3"):
            if other in f:
                result[f"engine_vs_{other}"] = e / f[other]["median"]
                result[f"engine_vs_{other}_cpu"] = f["engine"]["cpu_median"] / f[other]["cpu_median"]
                result[f"engine_vs_{other}_paired"] = float(np.median(pairs[other]))
    return result


def machine():
    import tensorflow as tf

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "numpy": np.__version__,
            "env": {k: v for k, v in os.environ.items() if k.startswith(("TF_", "ONEDNN", "OMP", "MKL", "OPENBLAS"))},
            "load_average_at_start": os.getloadavg()}


def verdicts(results):
    r = results.get(str(TARGETS["size"]))
    if not r or "engine_gflops" not in r:
        return {}
    out = {}
    if "engine_vs_eager" in r:
        out["engine <= 0.45 x eager"] = (r["engine_vs_eager"], r["engine_vs_eager"] <= TARGETS["vs_eager"])
    if "engine_vs_batch3" in r:
        out["engine <= 0.30 x batch-of-3"] = (r["engine_vs_batch3"], r["engine_vs_batch3"] <= TARGETS["vs_batch3"])
    out["effective rate >= 0.85 x numpy matmul"] = (r["engine_vs_matmul"], r["engine_vs_matmul"] >= TARGETS["vs_matmul"])
    if "peak_rss_bytes" in r:
        out["peak RSS <= 2 GiB"] = (r["peak_rss_bytes"] / GIB, r["peak_rss_bytes"] <= TARGETS["rss_bytes"])
    return out


def print_table(results, recipe):
    for size, r in results.items():
        if "formulations" in r:
            print_formulations(size, r, recipe)
        if "levers" in r:
            print_levers(size, r)


def print_formulations(size, r, recipe):
    print(f"\n{size} × {size} px   conv work per evaluation: engine {r['engine_gflop']:.1f} GFLOP "
          f"(to {r['deepest']}), seed 000 {r['seed_gflop']:.1f}, seed 003 {3 * r['seed_gflop']:.1f} (batch of 3)")
    print(f"{'formulation':40s} {'s/eval':>8s} {'min':>7s} {'cpu s':>7s} {'engine ÷':>9s} {'GFLOP/s':>8s}")
    for name, s in r["formulations"].items():
        ratio = r.get(f"engine_vs_{name}")
        work = r["engine_gflop"] if name == "engine" else r["seed_gflop"]
        print(f"{LABELS[name].format(recipe=recipe):40s} {s['median']:8.3f} {s['min']:7.3f} {s['cpu_median']:7.3f} "
              f"{(f'{ratio:.3f}' if ratio else '—'):>9s} {work / s['median']:8.1f}")
    rates = r["numpy_matmul_gflops"]
    print(f"numpy float32 matmul: {r['numpy_matmul_median']:.1f} GFLOP/s (median of {len(rates)}, "
          f"range {min(rates):.0f}–{max(rates):.0f})", end="")
    if "engine_gflops" in r:
        print(f"; engine {r['engine_gflops']:.1f} GFLOP/s = {r['engine_vs_matmul']:.2f} × numpy", end="")
    print()
    if "peak_rss_bytes" in r:
        print(f"engine peak RSS (alone, subprocess): {r['peak_rss_bytes'] / 2**20:.0f} MiB "
              f"(of which {r['rss_after_import_bytes'] / 2**20:.0f} MiB after importing TensorFlow)")


def print_levers(size, r):
    print(f"\nlevers at {size} px (each in its own subprocess; paired = median of per-round ratios to the "
          f"shipped engine; run() = bare session.run without the Evaluator):")
    print(f"{'lever':54s} {'s/eval':>8s} {'cpu s':>7s} {'paired':>7s} {'run()':>7s} {'RSS MiB':>8s} "
          f"{'loss':>14s} {'|grad|':>11s}")
    for label, v in r["levers"].items():
        print(f"{label:54s} {v['median']:8.3f} {v['cpu_median']:7.3f} {v['paired_ratio']:7.3f} "
              f"{v['raw_session_median']:7.3f} {v['peak_rss_bytes'] / 2**20:8.0f} {v['loss']:14.9g} "
              f"{v['grad_norm']:11.6g}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512", help="comma-separated square sizes (default 256,512)")
    p.add_argument("--recipe", default="tf-eager-blog", help="the engine's recipe (default tf-eager-blog)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed evaluations per formulation (default 1)")
    p.add_argument("--formulations", default=",".join(FORMULATIONS),
                   help="subset of engine,eager,function,batch3 (default all)")
    p.add_argument("--matmul-n", type=int, default=2048, help="numpy matmul size n (default 2048)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--rss-evals", type=int, default=2)
    p.add_argument("--levers", action="store_true", help="also time the engine under each lever (subprocesses)")
    p.add_argument("--lever-sizes", default="512", help="sizes for --levers (default 512)")
    p.add_argument("--lever-rounds", type=int, default=3)
    p.add_argument("--lever-evals", type=int, default=2)
    p.add_argument("--lever-filter", action="append", help="only levers whose label contains this (repeatable)")
    p.add_argument("--weights-seed", type=int, default=0)
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "speed.json"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="gpu: the engine alone on the GPU (plain Conv2D), seconds per evaluation and peak GPU "
                        "memory at --sizes (default there 512,1024,2048), and whether TF32 changes the numbers")
    args = p.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    if args.device == "gpu":
        return gpu_table(args)
    args.formulations = [f.strip() for f in args.formulations.split(",") if f.strip()]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    from legacy_nst.engine.runtime import tf

    tf.get_logger().setLevel("ERROR")
    out = {"machine": machine(), "args": vars(args), "targets": TARGETS, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="nst-speed-") as tmp:
        h5 = write_weights(tmp, args.weights_seed)
        rss = {}
        if not args.no_rss:  # first, while nothing of ours is running
            for size in sizes:
                rss[size] = run_child({"size": size, "recipe": args.recipe, "weights": str(h5), "evals": args.rss_evals})
                print(f"engine alone at {size}: peak RSS {rss[size]['peak_rss_bytes'] / 2**20:.0f} MiB, "
                      f"{rss[size]['median']:.2f} s/eval", flush=True)
        matmul = Matmul(args.matmul_n)
        for size in sizes:
            r = measure_size(args, h5, size, matmul)
            if size in rss:
                r["peak_rss_bytes"] = rss[size]["peak_rss_bytes"]
                r["rss_after_import_bytes"] = rss[size]["rss_after_import_bytes"]
                r["rss_child"] = rss[size]
            out["sizes"][str(size)] = r
        if args.levers:
            for size in [int(v) for v in args.lever_sizes.split(",")]:
                print(f"\n== levers at {size} px", flush=True)
                out["sizes"].setdefault(str(size), {})["levers"] = levers(args, h5, size)
    out["verdicts"] = verdicts(out["sizes"])
    out["load_average_at_end"] = os.getloadavg()
    print_table(out["sizes"], args.recipe)
    if out["verdicts"]:
        print(f"\ntargets at {TARGETS['size']} px:")
        for name, (value, ok) in out["verdicts"].items():
            print(f"  {name:42s} {value:7.3f}  {'met' if ok else 'NOT met'}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


def gpu_table(args):
    """The engine on the GPU: median seconds per evaluation (loss + gradient, one session.run) and TensorFlow's
    peak GPU memory per size, and the relative change of the loss with TF32 off. Target (issue 13): ≤ 6 ms
    per evaluation at 512 px on one H100, VGG19 to block5_conv2 (tf-eager-blog's losses)."""
    from legacy_nst.engine.runtime import tf

    if not tf.config.list_physical_devices("GPU"):
        print("--device gpu: TensorFlow sees no GPU on this machine", file=sys.stderr)
        return 2
    sizes = [int(s) for s in (args.sizes if args.sizes != "256,512" else "512,1024,2048").split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nst-speed-gpu-") as tmp:
        h5 = write_weights(tmp, args.weights_seed)
        for size in sizes:
            recipe = engine_recipe(args.recipe, size)
            content, style = test_images(size)
            tf.config.experimental.reset_memory_stats("GPU:0")
            losses = {}
            for tf32 in (True, False):
                tf.config.experimental.enable_tensor_float_32_execution(tf32)
                engine = Engine(recipe, h5, content, style, device="gpu")
                try:
                    for _ in range(args.warmup + 1):
                        losses[tf32] = engine()
                    times = []
                    for _ in range(max(args.rounds, 5) * 4 if tf32 else 1):
                        start = time.perf_counter()
                        engine()
                        times.append(time.perf_counter() - start)
                finally:
                    engine.close()
                if tf32:
                    seconds, peak = float(np.median(times)), tf.config.experimental.get_memory_info("GPU:0")["peak"]
            change = abs(losses[True] - losses[False]) / abs(losses[False])
            rows.append({"size": size, "seconds": seconds, "peak_bytes": peak, "tf32_relative_change": change})
            print(f"{size:5d} px: {seconds * 1000:8.2f} ms/evaluation, peak GPU memory {peak / 2**30:6.2f} GiB, "
                  f"loss with TF32 vs without: {change:.2e} relative", flush=True)
    gpu = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    out = {"device": gpu, "recipe": args.recipe, "rows": rows}
    path = Path(args.json).with_name("speed_gpu.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"{gpu.get('device_name', 'GPU')}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
