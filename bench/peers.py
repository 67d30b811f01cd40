#!/usr/bin/env python
"""The engine against what a user would pick instead: the same objective in PyTorch, side by side, ONE run.

  pip install -e .[bench]                        # PyTorch, for this bench only (never a runtime dependency)
  pip uninstall triton                           # PyPI's CUDA wheel: torch.compile segfaulted importing
                                                 # Triton beside TensorFlow (the CPU inductor needs none)
  python bench/peers.py                          # both objectives at 512 and 1024 px, 5 rounds
  python bench/peers.py --objectives shallow --sizes 512 --rounds 3
  python bench/peers.py --engine-convs transposed,plain    # the engine under each convolution formulation

Objectives, on the whole VGG19 of ../shared/weights/vgg19_full_q8.npz (8-bit taps in blocks 4-5; both sides
read the same arrays), Tübingen × Starry Night sized to a long side of SIZE px (512 × 384 at 512):
  shallow  the preview recipe's: content block3_conv2 (mean of squares), style block1/2/3_conv1 (Gram ÷ C·H·W,
           sum of squares, layer weights 1), content weight 1, style weight 0.1.
  whole    tf-eager-blog's (seed 000): VGG19 to block5_conv2, content block5_conv2 (mean), style block1..5_conv1
           (Gram ÷ H·W, mean of squares, weights 1/5), content weight 1e3, style weight 1e-2.

Formulations (--formulations):
  engine        legacy_nst.Transfer for the recipe (optimizer lbfgs), timed through the L-BFGS Evaluator as
                scipy drives it: loss(x) then grads(x) on the float64 vector; its convolution formulation is
                the one network.default_conv chooses on this machine, or each of --engine-convs.
  torch         eager PyTorch in NCHW, the style of the PyTorch tutorial and neural-style-pt: the VGG layers
                as torch.nn.functional.conv2d / relu / max_pool2d with the same weights (OIHW), Caffe
                preprocessing (RGB -> BGR, minus the mean), Grams as one matmul, loss.backward() to the image.
  torch-cl      the same with the image and weights in channels_last.
  torch-compile torch.compile of the channels_last loss-and-gradient step.
Each torch evaluation also takes the float64 vector and returns the float64 gradient, like the engine's.

First the check: every torch formulation's loss and image gradient against the engine's at the same image
(the content plus noise): |Δloss| / loss ≤ --loss-rtol (1e-5) and ‖Δg‖ ≤ --grad-rtol (3e-3) × ‖g‖. Measured
on AVX2 EPYC at 512 px: loss within 3e-7; ‖Δg‖ / ‖g‖ 3e-4 (NCHW) to 1e-3 (channels_last, whole network),
cosine ≥ 0.9999995: float32 sums in different orders, and a 2 × 2 max pool whose near-ties fall the other way
sends a position's whole gradient elsewhere, so the largest single difference (up to 1.2e-2 of max |g|) is
printed but not bounded. The engine's own formulations agree with each other to 2e-7. A disagreement stops the run.
Then --rounds rounds; each round runs, in turn, numpy's float32 matmul (n = --matmul-n) and one evaluation of
each formulation (engine first), so load on the shared machine hits all alike. Reported per objective and
size: median wall s and process CPU s per evaluation, engine ÷ each, the share of the FP32 matmul rate
(FLOPs of the evaluation: every conv forward and its input gradient, 2·H·W·9·Cin·Cout each, plus the Grams
and their gradients / median s, ÷ numpy's median rate), and each formulation's peak RSS measured alone in a
subprocess (the kernel's VmHWM). Writes --json (default bench/results/peers.json).
"""
import argparse
import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = ROOT.parent / "shared"
OBJECTIVES = {"shallow": "preview", "whole": "tf-eager-blog"}
TORCH_FORMULATIONS = ("torch", "torch-cl", "torch-compile")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TARGET_RATIO = 1.0  # engine ÷ the fastest PyTorch formulation at 512 px, both objectives (issue 23)


# ------------------------------------------------------------------------------------------- the problem

@dataclasses.dataclass
class Problem:
    objective: str
    size: int
    recipe: object
    params: dict
    content: np.ndarray
    style: np.ndarray


def problem(objective, size, args):
    from legacy_nst import images, recipes
    from legacy_nst.runner.sizing import size_images
    from legacy_nst.vgg import weights

    recipe = recipes.override(recipes.get(OBJECTIVES[objective]), size=size, optimizer="lbfgs", init="content")
    content, styles = size_images(recipe, images.load_image(args.content), [images.load_image(args.style)])
    params = weights.load_weights(args.weights, recipe.network, recipe.layers)
    return Problem(objective, size, recipe, params, content, styles[0])


def start_image(p):
    """The image the check evaluates: the content plus uniform noise of ±8 levels (not a stationary point)."""
    rng = np.random.default_rng(0)
    return (p.content.astype(np.float64) + rng.uniform(-8, 8, p.content.shape)).ravel()


def evaluation_flops(p):
    """FLOPs of one loss-and-gradient evaluation: each conv forward and its input gradient (2·H·W·9·Cin·Cout
    each), the style layers' Grams and their gradients (2·H·W·C² each)."""
    from legacy_nst.vgg.architecture import conv_shapes, deepest_layer

    deepest = deepest_layer(p.recipe.network, p.recipe.layers)
    total, (h, w) = 0, p.content.shape[:2]
    for name, ((kh, kw, cin, cout), _) in conv_shapes(p.recipe.network).items():
        if name.endswith("_conv1") and not name.startswith("block1"):
            h, w = h // 2, w // 2
        total += 2 * (2 * h * w * kh * kw * cin * cout)
        if name in p.recipe.style_layers:
            total += 2 * (2 * h * w * cout * cout)
        if name == deepest:
            return total
    raise ValueError(deepest)


# ------------------------------------------------------------------------------------------ the engine

class Engine:
    def __init__(self, p, conv=None):
        from legacy_nst.engine import level as transfer

        self.conv, chosen = conv or transfer.default_conv("cpu"), transfer.default_conv
        transfer.default_conv = lambda device: self.conv  # the formulation under test
        try:
            self.transfer = transfer.Transfer(p.recipe, p.content, [p.style], p.params, device="cpu")
        finally:
            transfer.default_conv = chosen
        self.evaluator = self.transfer.optimiser.evaluator

    def __call__(self, x):
        loss = self.evaluator.loss(x)
        return float(loss), self.evaluator.grads(x)

    def close(self):
        self.transfer.close()


# ------------------------------------------------------------------------------------------- the peer

class Torch:
    """The objective in PyTorch, written from the recipe's forms (only those the two objectives use)."""

    def __init__(self, p, channels_last=False, compiled=False):
        import torch
        import torch.nn.functional as F

        r = p.recipe
        assert (r.style_norm, r.tv_weight, r.adaptive_weights, r.normalize_gradients) == ("none", 0.0, False, False)
        self.torch, self.shape = torch, p.content.shape
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.layers = list(p.params)  # every conv up to the deepest, in order
        self.weights = {name: (torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
                               .contiguous(memory_format=self.format), torch.from_numpy(b))
                        for name, (k, b) in p.params.items()}
        self.mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
        self.F, self.recipe = F, r
        n_style = len(r.style_layers)
        self.style_weights = r.style_layer_weights or (1.0 / n_style,) * n_style
        with torch.no_grad():
            self.content_target = self.features(self.image(p.content))[r.content_layers[0]]
            style = self.features(self.image(p.style))
            self.gram_targets = {name: self.gram(style[name]) for name in r.style_layers}
        self.step = torch.compile(self.loss) if compiled else self.loss

    def image(self, rgb):
        """(1, 3, H, W) float32 of an (H, W, 3) image, or of the flat float64 vector scipy hands over."""
        rgb = np.asarray(rgb, np.float32)
        t = self.torch.from_numpy(rgb.reshape(self.shape) if rgb.ndim == 1 else rgb).permute(2, 0, 1)[None]
        return t.contiguous(memory_format=self.format)

    def features(self, rgb):
        x = rgb[:, [2, 1, 0]] - self.mean  # Caffe preprocessing: BGR, minus the ImageNet mean
        out = {}
        for name in self.layers:
            if name.endswith("_conv1") and name != "block1_conv1":
                x = self.F.max_pool2d(x, 2, 2)
            kernel, bias = self.weights[name]
            x = self.F.relu(self.F.conv2d(x, kernel, bias, padding=1))
            out[name] = x
        return out

    def gram(self, f):
        _, c, h, w = f.shape
        flat = f.permute(0, 2, 3, 1).reshape(h * w, c)  # a view in channels_last
        g = flat.t() @ flat
        return g / (h * w) if self.recipe.gram_norm == "positions" else g / (c * h * w)

    def loss(self, rgb):
        r, torch = self.recipe, self.torch
        f = self.features(rgb)
        content = torch.mean(torch.square(f[r.content_layers[0]] - self.content_target))
        style = 0.0
        for name, weight in zip(r.style_layers, self.style_weights):
            sq = torch.square(self.gram(f[name]) - self.gram_targets[name])
            style = style + weight * (torch.mean(sq) if r.style_form == "mean" else torch.sum(sq))
        return r.content_weight * content + r.style_weight * style

    def __call__(self, x):
        rgb = self.image(x).requires_grad_(True)
        loss = self.step(rgb)
        loss.backward()
        grad = rgb.grad.permute(0, 2, 3, 1).numpy().astype(np.float64).ravel()
        return loss.item(), grad

    def close(self):
        pass


def build(name, p):
    if name.startswith("engine"):
        return Engine(p, name.split(":")[1] if ":" in name else None)
    return Torch(p, channels_last=name != "torch", compiled=name == "torch-compile")


# --------------------------------------------------------------------------------------------- timing

class Matmul:
    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.n, (self.a, self.b) = n, (rng.random((n, n), dtype=np.float32) for _ in range(2))
        self.a @ self.b

    def rate(self, repeats=3):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.a @ self.b
            times.append(time.perf_counter() - t0)
        return 2 * self.n**3 / float(np.median(times))


def check(p, built, args):
    """Each formulation's loss and gradient against the first one's (the engine's) at start_image."""
    x = start_image(p)
    (ref_name, ref), rows = next(iter(built.items())), {}
    loss0, grad0 = ref(x)
    for name, fn in built.items():
        loss, grad = fn(x)
        row = {"loss": loss, "loss_rdiff": abs(loss - loss0) / abs(loss0),
               "grad_rdiff": float(np.linalg.norm(grad - grad0) / np.linalg.norm(grad0)),
               "grad_max_rdiff": float(np.abs(grad - grad0).max() / np.abs(grad0).max()),
               "grad_cosine": float(grad @ grad0 / np.linalg.norm(grad) / np.linalg.norm(grad0))}
        rows[name] = row
        print(f"  check {name:>16}: loss {loss:.7g} (Δ {row['loss_rdiff']:.1e}), gradient max Δ "
              f"{row['grad_max_rdiff']:.1e} of max |g|, ‖Δg‖ / ‖g‖ {row['grad_rdiff']:.1e}, cosine {row['grad_cosine']:.8f}", flush=True)
        if row["loss_rdiff"] > args.loss_rtol or row["grad_rdiff"] > args.grad_rtol:
            raise SystemExit(f"{name} does not compute {ref_name}'s objective at {p.size} px: stopping")
    return rows


def peak_rss(name, objective, size, args):
    """VmHWM of a subprocess that builds `name` alone and runs two evaluations."""
    cmd = [sys.executable, __file__, "--rss-worker", name, "--objectives", objective, "--sizes", str(size),
           "--weights", args.weights, "--content", args.content, "--style", args.style]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode:
        raise SystemExit(f"peak RSS of {name}: the worker failed:\n{out.stderr[-2000:]}")
    return int(out.stdout.split()[-1])


def rss_worker(args):
    p = problem(args.objectives[0], args.sizes[0], args)
    fn = build(args.rss_worker, p)
    x = start_image(p)
    fn(x)
    fn(x)
    status = Path("/proc/self/status").read_text()
    print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) * 1024)


def measure(objective, size, args):
    p = problem(objective, size, args)
    names = [f"engine:{c}" for c in args.engine_convs] if args.engine_convs else ["engine"]
    names += [f for f in args.formulations if f != "engine"]
    print(f"\n=== {objective} ({p.recipe.name}) at {p.content.shape[1]} × {p.content.shape[0]}: "
          f"{', '.join(names)}", flush=True)
    built = {name: build(name, p) for name in names}
    agreement = check(p, built, args)  # also the warm-up (torch.compile compiles here)
    x = start_image(p)
    matmul, rates = Matmul(args.matmul_n), []
    times = {name: [] for name in names}
    for k in range(args.rounds):
        for name, fn in built.items():
            rates.append(matmul.rate())
            w0, c0 = time.perf_counter(), time.process_time()
            fn(x)
            times[name].append((time.perf_counter() - w0, time.process_time() - c0))
        print(f"  round {k + 1}: " + ", ".join(f"{n} {t[-1][0]:.2f} s" for n, t in times.items()), flush=True)
    for fn in built.values():
        fn.close()
    del built
    gc.collect()
    flops, rate = evaluation_flops(p), float(np.median(rates))
    engine = float(np.median([w for w, _ in times[names[0]]]))
    rows = {}
    for name in names:
        wall = float(np.median([w for w, _ in times[name]]))
        rows[name] = {"s": wall, "cpu_s": float(np.median([c for _, c in times[name]])), "engine_over": engine / wall,
                      "matmul_share": flops / wall / rate, "times": times[name], **agreement[name]}
        if not args.no_rss:
            rows[name]["peak_rss"] = peak_rss(name, objective, size, args)
    fastest_peer = min((r["s"] for n, r in rows.items() if not n.startswith("engine")), default=None)
    return {"objective": objective, "recipe": p.recipe.name, "shape": list(p.content.shape), "gflop": flops / 1e9,
            "matmul_gflops": rate / 1e9, "rows": rows,
            "engine_over_fastest_peer": None if fastest_peer is None else engine / fastest_peer}


def print_table(m):
    h, w = m["shape"][:2]
    print(f"\n{m['objective']} ({m['recipe']}), {w} × {h}: {m['gflop']:.0f} GFLOP an evaluation, numpy float32 "
          f"matmul {m['matmul_gflops']:.0f} GFLOP/s in the same rounds")
    print("| formulation | s / evaluation (median) | CPU s | engine ÷ this | share of the FP32 matmul rate | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in m["rows"].items():
        rss = f"{r['peak_rss'] / 2**20:,.0f} MiB".replace(",", " ") if "peak_rss" in r else "—"
        print(f"| {name} | {r['s']:.3f} | {r['cpu_s']:.3f} | {r['engine_over']:.2f} | {r['matmul_share']:.2f} "
              f"| {rss} |")
    if m["engine_over_fastest_peer"] is not None:
        ok = m["engine_over_fastest_peer"] <= TARGET_RATIO
        print(f"engine ÷ the fastest PyTorch formulation: {m['engine_over_fastest_peer']:.3f} "
              f"(target ≤ {TARGET_RATIO}: {'met' if ok else 'NOT met'})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objectives", default="shallow,whole", help="shallow, whole (comma-separated)")
    p.add_argument("--sizes", default="512,1024", help="long sides (comma-separated)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--formulations", default="engine," + ",".join(TORCH_FORMULATIONS))
    p.add_argument("--engine-convs", default="", help="time the engine under each of these network.CONVS "
                                                      "instead of the one chosen for this machine")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--loss-rtol", type=float, default=1e-5)
    p.add_argument("--grad-rtol", type=float, default=3e-3)
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--content", default=str(SHARED / "images" / "tubingen.jpg"))
    p.add_argument("--style", default=str(SHARED / "images" / "starry_night.jpg"))
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_full_q8.npz"))
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "peers.json"))
    p.add_argument("--rss-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.objectives = args.objectives.split(",")
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.formulations = args.formulations.split(",")
    args.engine_convs = [c for c in args.engine_convs.split(",") if c]
    if args.rss_worker:
        return rss_worker(args)

    import torch
    from speed import machine

    from legacy_nst.engine import network

    info = dict(machine(), torch=torch.__version__, torch_threads=torch.get_num_threads(),
                engine_conv=network.default_conv("cpu"))
    print(f"{info['cpu']}, {info['cores']} cores, TF {info['tensorflow']}, PyTorch {info['torch']} "
          f"({info['torch_threads']} threads); engine convolution here: {info['engine_conv']}; load average "
          f"{info['load_average_at_start']}", flush=True)
    measured = []
    for size in args.sizes:
        for objective in args.objectives:
            measured.append(measure(objective, size, args))
            print_table(measured[-1])
    info["load_average_at_end"] = os.getloadavg()
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), "machine": info, "measured": measured}, indent=1))
    for m in measured:
        print_table(m)
    print(f"load average at the end {info['load_average_at_end']}; wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
