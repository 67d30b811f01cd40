"""Loss terms as graph ops, and the objective that weighs them.

Every variant a seed used is a named form, so a recipe picks forms instead of carrying code:
  Gram:     raw FᵀF (seeds 002-004, paper) | ÷ H·W "positions" (seed 000) | ÷ C·H·W "elements" (jcjohnson)
  content:  mean | half-sum | sum of (F − P)²
  style:    mean | sum of (G − A)², times a scale: none | layer 1/(4N²M²) (paper) |
            image 1/(4·3²·(H·W)²) with the IMAGE's size and channels = 3 hard-coded (seeds 003 and 004)
  variation: keras Σ(a + b)^1.25 (seed 003) | l2 Σ dx² + Σ dy² | denoise mean|dy| + mean|dx| (seed 002)
Targets are fixed arrays computed once; the objective holds them as initialised, non-trainable variables.
"""
import numpy as np
import tensorflow as tf

GRAM_NORMS = ("raw", "positions", "elements")
CONTENT_FORMS = ("mean", "half-sum", "sum")
STYLE_FORMS = ("mean", "sum")
STYLE_SCALES = ("none", "layer", "image")
TV_FORMS = ("none", "keras", "l2", "denoise")
TERMS = ("content", "style", "tv")
ADAPTIVE_EPS = 1e-10


@tf.custom_gradient
def _gram_raw(flat):
    """FᵀF. Its gradient F (dG + dGᵀ) is one matmul; TF's own is two, (F dGᵀ) + (F dG), plus their sum."""
    def grad(upstream):
        return tf.matmul(flat, upstream + tf.transpose(upstream))
    return tf.matmul(flat, flat, transpose_a=True), grad


def gram(features, norm):
    """C×C Gram of a (1, H, W, C) activation; equal to the channels-first F Fᵀ of seeds 003/004."""
    channels = int(features.shape[-1])
    flat = tf.reshape(features, [-1, channels])
    g = _gram_raw(flat)
    positions = tf.cast(tf.shape(flat)[0], tf.float32)
    if norm == "positions":
        return g / positions
    if norm == "elements":
        return g / (positions * channels)
    return g


def squared_error(x, target, form):
    diff = tf.square(x - target)
    if form == "mean":
        return tf.reduce_mean(diff)
    total = tf.reduce_sum(diff)
    return 0.5 * total if form == "half-sum" else total


def style_scale(kind, layer_shape, image_shape):
    """Constant factor in front of one layer's style term (shapes are static: (1, H, W, C))."""
    if kind == "layer":
        _, h, w, c = layer_shape
        return 1.0 / (4.0 * c**2 * (h * w) ** 2)
    if kind == "image":
        _, h, w, _ = image_shape
        return 1.0 / (4.0 * 3**2 * (h * w) ** 2)
    return 1.0


def total_variation(image, form):
    if form == "keras":
        a = tf.square(image[:, :-1, :-1, :] - image[:, 1:, :-1, :])
        b = tf.square(image[:, :-1, :-1, :] - image[:, :-1, 1:, :])
        return tf.reduce_sum(tf.pow(a + b, 1.25))
    dy = image[:, 1:, :, :] - image[:, :-1, :, :]
    dx = image[:, :, 1:, :] - image[:, :, :-1, :]
    if form == "l2":
        return tf.reduce_sum(tf.square(dy)) + tf.reduce_sum(tf.square(dx))
    return tf.reduce_mean(tf.abs(dy)) + tf.reduce_mean(tf.abs(dx))


def layer_weights(layers, weights):
    """Per-layer weights: as given, or 1/len (every seed's default)."""
    return tuple(weights) if weights else (1.0 / len(layers),) * len(layers)


def _held(name, value):
    """A target held in the graph once; initialised by feeding, so no copy sits in the GraphDef."""
    feed = tf.compat.v1.placeholder(tf.float32, value.shape, name=f"{name}_value")
    var = tf.compat.v1.Variable(feed, trainable=False, name=name, use_resource=True)
    return var, {feed: value}


class Objective:
    """total = Σ_k weight_k · adjust_k · term_k over (content, style, tv), and its gradient in one graph.

    `adjust` is 1 unless the recipe uses seed 002's adaptive normalisation, where it defaults to
    1 / (stop_gradient(term) + 1e-10) from the current image; an optimiser that needs a fixed objective
    (L-BFGS between restarts) feeds `adjust` instead.
    """

    def __init__(self, vgg, image, recipe, content_targets, style_targets):
        features = vgg(image)
        image_shape = tuple(image.shape.as_list())
        self._targets, self._init_feeds = [], {}
        zero = tf.constant(0.0)
        content = zero
        for layer, weight in zip(recipe.content_layers, layer_weights(recipe.content_layers, recipe.content_layer_weights)):
            target = self._hold(f"content_{layer}", content_targets[layer])
            content += weight * squared_error(features[layer], target, recipe.content_form)
        style = zero
        for layer, weight in zip(recipe.style_layers, layer_weights(recipe.style_layers, recipe.style_layer_weights)):
            target = self._hold(f"gram_{layer}", style_targets[layer])
            scale = style_scale(recipe.style_scale, tuple(features[layer].shape.as_list()), image_shape)
            error = squared_error(gram(features[layer], recipe.gram_norm), target, recipe.style_form)
            style += (weight * scale) * error
        tv = total_variation(image, recipe.tv_form) if recipe.tv_form != "none" and recipe.tv_weight else zero
        self.terms = tf.stack([content, style, tv], name="terms")
        style_weight = recipe.style_weight**2 if recipe.style_weight_twice else recipe.style_weight
        weights = tf.constant([recipe.content_weight, style_weight, recipe.tv_weight], tf.float32)
        default_adjust = (1.0 / (tf.stop_gradient(self.terms) + ADAPTIVE_EPS) if recipe.adaptive
                          else tf.ones([3]))
        self.adjust = tf.compat.v1.placeholder_with_default(default_adjust, [3], name="adjust")
        self.total = tf.reduce_sum(weights * self.adjust * self.terms, name="total")
        self.gradient = tf.gradients(self.total, image)[0]

    def _hold(self, name, value):
        var, feed = _held(name, np.asarray(value, np.float32))
        self._targets.append(var)
        self._init_feeds.update(feed)
        return var

    def initialise(self, session):
        """Load the targets into their variables (once per run)."""
        session.run([v.initializer for v in self._targets], feed_dict=self._init_feeds)
        self._init_feeds = {}


def term_weights(recipe):
    """(content, style, tv) weights as the Objective applies them (seed 003 squares the style weight)."""
    style_weight = recipe.style_weight**2 if recipe.style_weight_twice else recipe.style_weight
    return np.array([recipe.content_weight, style_weight, recipe.tv_weight], np.float64)
