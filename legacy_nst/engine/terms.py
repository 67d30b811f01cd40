"""Loss terms as graph ops, and the objective that weighs them.

Every variant a seed used is a named form, so a recipe picks forms instead of carrying code:
  Gram:     raw FᵀF (seeds 002-004, paper) | ÷ H·W "positions" (seed 000) | ÷ C·H·W "elements" (jcjohnson)
  content:  mean | half-sum | sum of (F − P)²
  style:    mean | sum of (G − A)², times a norm: none | layer 1/(4N²M²) (paper) |
            image 1/(4·3²·(H·W)²) with the IMAGE's size and channels = 3 hard-coded (seeds 003 and 004)
  variation: keras Σ(a + b)^1.25 (seed 003) | l2 Σ dx² + Σ dy² | denoise mean|dy| + mean|dx| (seed 002) |
            torch ½ Σ dx² + dy² on the (H−1) × (W−1) grid (jcjohnson's TVLoss backward)
Targets are fixed arrays computed once; the objective holds them as initialised, non-trainable variables.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .runtime import tf
from ..errors import UserError
from ..recipes import term_names, term_weights
from ..vgg.architecture import canonical_layer, layer_sequence

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


def style_norm_factor(kind, layer_shape, image_shape, literal_size=()):
    """Constant factor in front of one layer's style term (shapes are static: (1, H, W, C)); `image` uses
    `literal_size` (H, W) instead of the image's when given (seed 004 divides by its own photo's size)."""
    if kind == "layer":
        _, h, w, c = layer_shape
        return 1.0 / (4.0 * c**2 * (h * w) ** 2)
    if kind == "image":
        h, w = literal_size or image_shape[1:3]
        return 1.0 / (4.0 * 3**2 * (h * w) ** 2)
    return 1.0


def total_variation(image, form):
    if form == "torch":  # jcjohnson's TVLoss: its backward is the gradient of this, on the (H−1) × (W−1) grid
        corner = image[:, :-1, :-1, :]
        return 0.5 * (tf.reduce_sum(tf.square(corner - image[:, :-1, 1:, :]))
                      + tf.reduce_sum(tf.square(corner - image[:, 1:, :-1, :])))
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


@dataclass(frozen=True)
class StyleTarget:
    """What one style term aims at: its Grams per layer, its share of the style term, and (spatial control)
    its mask per layer, or None for the whole image."""

    weight: float
    grams: dict
    masks: dict | None = None


def _normalised_gradient(features, strength):
    """Identity whose gradient is divided by its L1 norm, then scaled by the term's strength (jcjohnson's
    -normalize_gradients: each loss module's gradInput ÷ (‖·‖₁ + 1e-8), × strength). The upstream gradient
    already carries the strength, hence ÷ (‖g‖₁ / strength + 1e-8)."""
    @tf.custom_gradient
    def identity(x):
        def grad(g):
            return g / (tf.reduce_sum(tf.abs(g)) / strength + 1e-8)
        return tf.identity(x), grad
    return identity(features) if strength else features


class Objective:
    """total = Σ_k weight_k · adjust_k · term_k over the recipe's named terms, and its gradient, in one graph.

    `terms` is a vector in the order of `names`. `adjust` is 1 unless the recipe uses seed 002's adaptive
    weights, where it defaults to 1 / (stop_gradient(term) + 1e-10) from the current image; an optimiser
    that needs a fixed objective (L-BFGS between restarts) feeds `adjust` instead. `style_targets` is a list
    of StyleTarget: one with blended Grams for unmasked styles (every source's multi-style blend), one per
    style with guided Grams (Gatys et al. 2017) when styles have masks.
    """

    def __init__(self, vgg, image, recipe, content_targets, style_targets):
        features = vgg(image)
        image_shape = tuple(image.shape.as_list())
        self._targets, self._init_feeds = [], {}
        self.names = term_names(recipe)
        self.weights = term_weights(recipe)

        def layer_input(layer, strength):
            return _normalised_gradient(features[layer], strength) if recipe.normalize_gradients else features[layer]

        content = tf.constant(0.0)
        for layer, weight in zip(recipe.content_layers, layer_weights(recipe.content_layers, recipe.content_layer_weights)):
            target = self._hold(f"content_{layer}", content_targets[layer])
            f = layer_input(layer, self.weights["content"] * weight)
            content += weight * squared_error(f, target, recipe.content_form)
        style = tf.constant(0.0)
        for k, aim in enumerate(style_targets):
            for layer, weight in zip(recipe.style_layers, layer_weights(recipe.style_layers, recipe.style_layer_weights)):
                target = self._hold(f"gram_{k}_{layer}", aim.grams[layer])
                norm = style_norm_factor(recipe.style_norm, tuple(features[layer].shape.as_list()), image_shape,
                                         recipe.style_norm_size)
                f = layer_input(layer, self.weights["style"] * aim.weight * weight)
                guided = (gram(f, recipe.gram_norm) if aim.masks is None
                          else masked_gram(f, self._hold(f"mask_{k}_{layer}", aim.masks[layer]), recipe.gram_norm))
                style += (aim.weight * weight * norm) * squared_error(guided, target, recipe.style_form)
        terms = {"content": content, "style": style}
        if "tv" in self.names:
            terms["tv"] = total_variation(image, recipe.tv_form)
        self.terms = tf.stack([terms[name] for name in self.names], name="terms")
        weights = tf.constant([self.weights[name] for name in self.names], tf.float32)
        count = len(self.names)
        default_adjust = (1.0 / (tf.stop_gradient(self.terms) + ADAPTIVE_EPS) if recipe.adaptive_weights
                          else tf.ones([count]))
        self.adjust = tf.compat.v1.placeholder_with_default(default_adjust, [count], name="adjust")
        self.total = tf.reduce_sum(weights * self.adjust * self.terms, name="total")
        self.gradient = tf.gradients(self.total, image)[0]
        if not recipe.tv_in_loss and "tv" in self.names:  # jcjohnson: the TV pulls, but is not in the loss
            reported = tf.constant([name != "tv" for name in self.names], tf.float32)
            self.total = tf.reduce_sum(reported * weights * self.adjust * self.terms, name="reported_total")

    def _hold(self, name, value):
        var, feed = _held(name, np.asarray(value, np.float32))
        self._targets.append(var)
        self._init_feeds.update(feed)
        return var

    def initialise(self, session):
        """Load the targets into their variables (once per run)."""
        session.run([v.initializer for v in self._targets], feed_dict=self._init_feeds)
        self._init_feeds = {}


def masked_gram(features, mask, norm):
    """Guided Gram (Gatys et al. 2017, "Controlling Perceptual Factors", section 4): (F·m)ᵀ(F·m) of a
    (1, H, W, C) activation weighted by an (H, W) mask of 0..1 at the layer's resolution.

    "positions" divides by Σm², not Σm: (F·m)ᵀ(F·m) = Σ_p m_p² f_p f_pᵀ, so Σm² makes it the m²-weighted
    mean of f fᵀ, equal to `gram(features, "positions")` of a region of uniform style for any mask
    (the two agree for a 0/1 mask). It is also what the authors' code computes: their guides are scaled
    to mean square 1 before their Gram ÷ H·W. "elements" divides by C·Σm² in the same way."""
    channels = int(features.shape[-1])
    mask = tf.convert_to_tensor(mask, tf.float32)
    flat = tf.reshape(features * mask[None, :, :, None], [-1, channels])
    g = _gram_raw(flat)
    weight = tf.reduce_sum(tf.square(mask))
    if norm == "positions":
        return g / weight
    if norm == "elements":
        return g / (weight * channels)
    return g


MASK_THRESHOLD = 0.5  # "inside" makes a soft mask binary here first, as the authors' code (th = .5)


def _halve(mask, mode):
    """One 2 × 2, stride-2 VALID pooling stage (the network's; odd last rows and columns are dropped):
    the mean for "simple", the minimum for "inside" (a pooled position sees only the region if all four do)."""
    h, w = mask.shape[0] // 2 * 2, mask.shape[1] // 2 * 2
    blocks = mask[:h, :w].reshape(h // 2, 2, w // 2, 2)
    return blocks.mean(axis=(1, 3)) if mode == "simple" else blocks.min(axis=(1, 3))


def layer_masks(mask, network, layers, mode="simple"):
    """{layer: (h_l, w_l) float32 mask} for the given conv layers, the (H, W) image mask carried down.

    The paper down-samples each guidance channel to its layer's size. "simple" does that with one 2 × 2
    average per pooling stage, exactly on the network's pooling grid, so a layer's mask is the fraction of
    each pooled cell inside the region (soft at the edges). "inside" is the authors' code's mode of that
    name, in closed form instead of by probing the network with noise: the mask is made binary and a
    position kept only if its whole receptive field lies in the region: each 3 × 3 convolution erodes by
    one position (zero padding beyond the image border counts as inside: it carries no outside pixels), each
    pool keeps a cell only if all four inputs are kept. Max and average pooling see the same window, so the
    network's pooling does not matter. A mask that "inside" erodes to nothing at some layer is refused."""
    from ..recipes import MASK_MODES

    if mode not in MASK_MODES:
        raise UserError(f"unknown mask mode {mode!r}; use {' or '.join(MASK_MODES)}")
    wanted = {canonical_layer(network, name) for name in layers}
    current = np.asarray(mask, np.float32)
    if mode == "inside":
        current = (current >= MASK_THRESHOLD).astype(np.float32)
    out = {}
    for name in layer_sequence(network):
        if not wanted - set(out):
            break
        if name.endswith("_pool"):
            current = _halve(current, mode)
            continue
        if mode == "inside":
            current = ndimage.binary_erosion(current, np.ones((3, 3)), border_value=1).astype(np.float32)
        if name in wanted:
            if not current.any():
                raise UserError(f"the mask leaves no position inside the region at {name} "
                                f"({current.shape[0]}x{current.shape[1]}, mask mode {mode}); use a larger region "
                                "or a larger image" + (", or mask mode simple" if mode == "inside" else ""))
            out[name] = current
    return out
