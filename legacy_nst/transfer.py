"""The algorithm: size the images, compute the targets once, build one graph, let the optimiser run.

`Transfer(...).steps()` yields a `Step` per evaluation; the caller decides what to print, save and keep
(as in anishathalye/neural-style). Nothing here writes files.
"""
import numpy as np
import tensorflow as tf

from . import images
from .errors import UserError
from .losses import Objective, gram
from .network import CAFFE_MEAN_BGR, VGG, layer_depth, min_input_side
from .optimisers import OPTIMIZER_CLASSES

DEVICES = ("auto", "cpu", "gpu")


def size_images(recipe, content, styles):
    """Content and styles sized by the recipe's rule; refuses images too small for the deepest layer."""
    shape = images.target_shape(content.shape, recipe.size, recipe.size_mode)
    sized_content = images.resize(content, shape, recipe.resample)
    sized_styles = []
    for style in styles:
        style_shape = (shape if recipe.style_sizing == "match-content"
                       else images.target_shape(style.shape, recipe.size, recipe.size_mode))
        sized_styles.append(images.resize(style, style_shape, recipe.resample))
    need = min_input_side(recipe.network, recipe.layers)
    for what, image in [("content", sized_content)] + [("style", s) for s in sized_styles]:
        if min(image.shape[:2]) < need:
            h, w = image.shape[:2]
            raise UserError(f"the {what} image is {w}×{h} px after sizing; the deepest layer needs at least "
                            f"{need} px on each side: use a larger image or --size")
    return sized_content, sized_styles


def initial_image(recipe, content, styles, seed):
    """The starting image (float64 RGB): the content, the first style, or the recipe's kind of noise."""
    rng = np.random.default_rng(seed)
    if recipe.init == "content":
        return content.astype(np.float64)
    if recipe.init == "style":
        return images.resize(styles[0], content.shape[:2], recipe.resample).astype(np.float64)
    mean_rgb = CAFFE_MEAN_BGR[::-1].astype(np.float64)
    if recipe.noise == "uniform":  # U[0, 1) in the preprocessed (BGR − mean) space, as seed 004
        return rng.random(content.shape)[..., ::-1] + mean_rgb
    if recipe.noise == "uniform+128":  # seed 002
        return rng.random(content.shape) + 128.0
    return mean_rgb + rng.normal(0.0, 1e-3, content.shape)  # small Gaussian around the mean (jcjohnson)


def session_config(device):
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; use auto, cpu or gpu")
    if device == "gpu" and not tf.config.list_physical_devices("GPU"):
        raise UserError("--device gpu: TensorFlow sees no GPU here; use --device cpu or auto")
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0} if device == "cpu" else {})
    # The VGG graph is one chain: running two ops at once only makes their oneDNN kernels share the cores
    # (bench/README.md). The session's own inter-op pool, or TF uses the first session's in the process.
    config.inter_op_parallelism_threads = 1
    config.use_per_session_threads = True
    return config


class Transfer:
    """One run's graph, session and optimiser. Targets are computed here, once, then held fixed."""

    def __init__(self, recipe, content, styles, params, blend=None, seed=0, device="auto", init_image=None):
        self.recipe = recipe
        self.content, self.styles = content, styles
        blend = np.asarray(blend if blend is not None else [1.0] * len(styles), np.float64)
        blend = blend / blend.sum()
        x0 = initial_image(recipe, content, styles, seed) if init_image is None else init_image
        self.graph = tf.Graph()
        with self.graph.as_default():
            deepest = max(recipe.layers, key=lambda name: layer_depth(recipe.network, name))
            vgg = VGG(recipe.network, params, deepest, recipe.pooling)
            probe = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="probe")
            probe_features = vgg(probe)
            grams = {layer: gram(probe_features[layer], recipe.gram_norm) for layer in recipe.style_layers}
            self.session = tf.compat.v1.Session(graph=self.graph, config=session_config(device))
            content_targets = self.session.run({l: probe_features[l][0:1] for l in recipe.content_layers},
                                               {probe: content[None]})
            style_targets = {layer: 0.0 for layer in recipe.style_layers}
            for weight, style in zip(blend, styles):
                for layer, value in self.session.run(grams, {probe: style[None]}).items():
                    style_targets[layer] = style_targets[layer] + weight * value
            self.optimiser = OPTIMIZER_CLASSES[recipe.optimizer](recipe, x0)
            self.objective = Objective(vgg, self.optimiser.image, recipe, content_targets, style_targets)
            self.objective.initialise(self.session)
            self.optimiser.attach(self.session, self.objective)
        self.graph.finalize()

    def steps(self, state=None):
        return self.optimiser.steps(state)

    def state(self):
        return self.optimiser.state()

    def close(self):
        self.session.close()
