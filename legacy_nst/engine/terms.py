"""The loss terms, each written once, and the objective that weighs them.

A term is a function of sums over positions, so one term object serves both the whole-image graph
(`Objective`) and the tiled evaluation (tiling.py), which gathers the same sums tile by tile:
  content: per layer Σ_p (F_p − P_p)², times the layer's weight and the form's factor (ContentForm:
           mean 1/count | half-sum ½ | sum 1);
  style:   per layer the raw Gram Σ_p f_p f_pᵀ (guided: of f·m), divided by its norm (GramNorm: raw FᵀF
           (seeds 002-004, paper) | positions H·W, guided Σm² (seed 000) | elements C·H·W (jcjohnson)),
           then Σ (G − A)² times the layer's weight, the form's factor (StyleForm: mean 1/C² | sum 1) and a
           norm (StyleNorm: none | layer 1/(4N²M²) (paper) | image 1/(4·3²·(H·W)²) with the IMAGE's size and
           channels = 3 hard-coded (seeds 003 and 004));
  tv:      local to the image, so never tiled (TVForm: keras Σ(a + b)^1.25 (seed 003) | l2 Σ dx² + Σ dy² |
           denoise mean|dy| + mean|dx| (seed 002) | torch ½ Σ dx² + dy² on the (H−1) × (W−1) grid,
           jcjohnson's TVLoss backward).
ContentTerm and StyleTerm each have `position_sums` (graph ops summing over the positions they are given:
the whole image, or the interior a tile owns), `coefficients` (plain numbers from the layer and image sizes)
and `score` (the term from sums and coefficients), so a score does not know where its sums came from.
`weigh` makes the total from the vector of terms for both objectives. Each form is looked up in a table
keyed by its enum (recipes), so an unknown form fails instead of falling through to some default.
Targets are fixed arrays computed once; the objective holds them as initialised, non-trainable variables.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .runtime import tf
from ..errors import UserError
from ..recipes import MASK_MODES, ContentForm, GramNorm, StyleForm, StyleNorm, TVForm, term_names, term_weights
from ..vgg.architecture import canonical_layer, layer_sequence

ADAPTIVE_EPS = 1e-10


def adaptive_factors(terms):
    """Seed 002's adaptive weights, 1 / (L + 1e-10) per term: of a numpy array, or of a tensor (whose
    gradient the caller stops: the factors are constants of the objective)."""
    return 1.0 / (terms + ADAPTIVE_EPS)


@tf.custom_gradient
def _gram_raw(flat):
    """FᵀF. Its gradient F (dG + dGᵀ) is one matmul; TF's own is two, (F dGᵀ) + (F dG), plus their sum."""
    def grad(upstream):
        return tf.matmul(flat, upstream + tf.transpose(upstream))
    return tf.matmul(flat, flat, transpose_a=True), grad


def raw_gram(features, mask=None):
    """Σ_p f_p f_pᵀ of a (1, H, W, C) activation, or of f·m with an (H, W) mask (a tensor or an array):
    a sum over positions, so sums over tiles add up to the whole image's."""
    if mask is not None:
        features = features * tf.convert_to_tensor(mask, features.dtype)[None, :, :, None]
    return _gram_raw(tf.reshape(features, [-1, int(features.shape[-1])]))


_GRAM_DIVISORS = {GramNorm.RAW: lambda positions, channels: 1.0,
                  GramNorm.POSITIONS: lambda positions, channels: positions,
                  GramNorm.ELEMENTS: lambda positions, channels: positions * channels}


def gram_divisor(norm, positions, channels):
    """What the Gram normalisation `norm` divides the raw Σ f fᵀ of `positions` positions by (a number, or
    a tensor when the size is known only when the graph runs)."""
    return _GRAM_DIVISORS[GramNorm(norm)](positions, channels)


def guided_positions(mask):
    """The positions a guided Gram counts, Σm² (not Σm): (F·m)ᵀ(F·m) = Σ_p m_p² f_p f_pᵀ, so ÷ Σm² makes it
    the m²-weighted mean of f fᵀ, equal to the unguided Gram ÷ H·W of a region of uniform style for any mask
    (the two agree for a 0/1 mask). It is also what the authors' code computes: their guides are scaled to
    mean square 1 before their Gram ÷ H·W."""
    return float(np.sum(np.square(np.asarray(mask, np.float64))))


def gram(features, norm, mask=None):
    """The C×C Gram of a (1, H, W, C) activation (an array or a tensor), normalised by `norm`; equal to the
    channels-first F Fᵀ of seeds 003/004. With an (H, W) array `mask` of 0..1 at the layer's resolution,
    the guided Gram of Gatys et al. 2017 ("Controlling Perceptual Factors", section 4), ÷ guided_positions."""
    features = tf.convert_to_tensor(features)
    if mask is None:
        positions = tf.cast(tf.reduce_prod(tf.shape(features)[:-1]), features.dtype)
    else:
        positions = guided_positions(mask)
    return raw_gram(features, mask) / gram_divisor(norm, positions, int(features.shape[-1]))


def layer_weights(layers, weights):
    """Per-layer weights: as given, or 1/len (every seed's default)."""
    return tuple(weights) if weights else (1.0 / len(layers),) * len(layers)


_CONTENT_FACTORS = {ContentForm.MEAN: lambda count: 1.0 / count, ContentForm.HALF_SUM: lambda count: 0.5,
                    ContentForm.SUM: lambda count: 1.0}


@dataclass(frozen=True)
class ContentTerm:
    """Σ_l weight_l · factor_l · Σ_p (F_lp − P_lp)² over the content layers."""

    layers: tuple
    weights: tuple
    form: ContentForm

    @classmethod
    def of(cls, recipe):
        return cls(recipe.content_layers, layer_weights(recipe.content_layers, recipe.content_layer_weights),
                   ContentForm(recipe.content_form))

    def position_sums(self, features, targets):
        """{layer: Σ (F − P)²} over the positions of `features`, the targets at the same positions."""
        return {layer: tf.reduce_sum(tf.square(features[layer] - targets[layer])) for layer in self.layers}

    def coefficients(self, shapes):
        """{layer: the factor before its sum}, from the whole image's layer shapes {layer: (1, h, w, c)}."""
        return {layer: weight * _CONTENT_FACTORS[self.form](math.prod(shapes[layer]))
                for layer, weight in zip(self.layers, self.weights)}

    def score(self, sums, coefficients):
        return tf.add_n([coefficients[layer] * sums[layer] for layer in self.layers])


_STYLE_FACTORS = {StyleForm.MEAN: lambda channels: 1.0 / channels**2, StyleForm.SUM: lambda channels: 1.0}

_STYLE_NORMS = {  # of a layer's shape (1, h, w, c) and the image's size (H, W)
    StyleNorm.NONE: lambda layer, size: 1.0,
    StyleNorm.LAYER: lambda layer, size: 1.0 / (4.0 * layer[3]**2 * (layer[1] * layer[2]) ** 2),
    StyleNorm.IMAGE: lambda layer, size: 1.0 / (4.0 * 3**2 * (size[0] * size[1]) ** 2)}


def style_norm_factor(kind, layer_shape, image_shape, literal_size=()):
    """Constant factor in front of one layer's style term (shapes (1, H, W, C)); `image` uses `literal_size`
    (H, W) instead of the image's when given (seed 004 divides by its own photo's size)."""
    return _STYLE_NORMS[StyleNorm(kind)](layer_shape, tuple(literal_size) or tuple(image_shape[1:3]))


@dataclass(frozen=True)
class StyleTerm:
    """Σ_l share · weight_l · norm_l · factor_l · Σ (G_l − A_l)², G_l = Σ_p f fᵀ ÷ its Gram divisor, over the
    style layers. `share` is the style's part of the style term; `masks` ({layer: (h, w) array}, or None for
    the whole image) make its Grams guided ones."""

    layers: tuple
    weights: tuple
    gram_norm: GramNorm
    form: StyleForm
    norm: StyleNorm
    norm_size: tuple = ()
    share: float = 1.0
    masks: dict | None = None

    @classmethod
    def of(cls, recipe, share=1.0, masks=None):
        return cls(recipe.style_layers, layer_weights(recipe.style_layers, recipe.style_layer_weights),
                   GramNorm(recipe.gram_norm), StyleForm(recipe.style_form), StyleNorm(recipe.style_norm),
                   tuple(recipe.style_norm_size), share, masks)

    def position_sums(self, features, masks=None):
        """{layer: raw Gram} over the positions of `features`; `masks` the graph's copies of self.masks."""
        return {layer: raw_gram(features[layer], None if masks is None else masks[layer]) for layer in self.layers}

    def coefficients(self, shapes, image_shape):
        """{layer: (factor before Σ (G − A)², divisor of the raw Gram)}, from the whole image's layer shapes
        {layer: (1, h, w, c)} and its own (1, H, W, 3)."""
        out = {}
        for layer, weight in zip(self.layers, self.weights):
            shape = shapes[layer]
            positions = shape[1] * shape[2] if self.masks is None else guided_positions(self.masks[layer])
            factor = self.share * weight * style_norm_factor(self.norm, shape, image_shape, self.norm_size)
            out[layer] = (factor * _STYLE_FACTORS[self.form](shape[3]),
                          gram_divisor(self.gram_norm, positions, shape[3]))
        return out

    def score(self, sums, coefficients, targets):
        """The term from the raw Grams `sums`, against the normalised target Grams `targets`."""
        return tf.add_n([factor * tf.reduce_sum(tf.square(sums[layer] / divisor - targets[layer]))
                         for layer, (factor, divisor) in coefficients.items()])


def _keras_variation(image):
    a = tf.square(image[:, :-1, :-1, :] - image[:, 1:, :-1, :])
    b = tf.square(image[:, :-1, :-1, :] - image[:, :-1, 1:, :])
    return tf.reduce_sum(tf.pow(a + b, 1.25))


def _torch_variation(image):
    """jcjohnson's TVLoss: its backward is the gradient of this, on the (H−1) × (W−1) grid."""
    corner = image[:, :-1, :-1, :]
    return 0.5 * (tf.reduce_sum(tf.square(corner - image[:, :-1, 1:, :]))
                  + tf.reduce_sum(tf.square(corner - image[:, 1:, :-1, :])))


def _differences(image):
    return image[:, 1:, :, :] - image[:, :-1, :, :], image[:, :, 1:, :] - image[:, :, :-1, :]


def _l2_variation(image):
    dy, dx = _differences(image)
    return tf.reduce_sum(tf.square(dy)) + tf.reduce_sum(tf.square(dx))


def _denoise_variation(image):
    dy, dx = _differences(image)
    return tf.reduce_mean(tf.abs(dy)) + tf.reduce_mean(tf.abs(dx))


# TVForm.NONE is no term at all (recipes.term_names leaves "tv" out)
_VARIATIONS = {TVForm.KERAS: _keras_variation, TVForm.L2: _l2_variation, TVForm.DENOISE: _denoise_variation,
               TVForm.TORCH: _torch_variation}


def total_variation(image, form):
    return _VARIATIONS[TVForm(form)](image)


def weigh(recipe, terms):
    """(adjust, total, reported total) of the vector `terms` (in the order of term_names).

    total = Σ_k weight_k · adjust_k · term_k is what the gradient follows; the reported total leaves the TV
    out where the recipe's source did (jcjohnson: the TV pulls, but is not in the loss). `adjust` is 1 unless
    the recipe uses seed 002's adaptive weights, where it defaults to adaptive_factors of the current terms;
    an optimiser that needs a fixed objective (L-BFGS between restarts) feeds `adjust` instead."""
    names = term_names(recipe)
    weights = tf.constant([term_weights(recipe)[name] for name in names], terms.dtype)
    default = (adaptive_factors(tf.stop_gradient(terms)) if recipe.adaptive_weights
               else tf.ones([len(names)], terms.dtype))
    adjust = tf.compat.v1.placeholder_with_default(default, [len(names)], name="adjust")
    total = tf.reduce_sum(weights * adjust * terms, name="total")
    if recipe.tv_in_loss or "tv" not in names:
        return adjust, total, total
    reported = tf.constant([name != "tv" for name in names], terms.dtype)
    return adjust, total, tf.reduce_sum(reported * weights * adjust * terms, name="reported_total")


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
    """The recipe's terms of one image tensor, weighed, and the image gradient, in one graph.

    `terms` is a vector in the order of `names`; `adjust` and `total` as `weigh` makes them. `style_targets`
    is a list of StyleTarget: one with blended Grams for unmasked styles (every source's multi-style blend),
    one per style with guided Grams (Gatys et al. 2017) when styles have masks.
    """

    def __init__(self, vgg, image, recipe, content_targets, style_targets):
        features = vgg(image)
        image_shape = tuple(image.shape.as_list())
        shapes = {layer: tuple(features[layer].shape.as_list()) for layer in recipe.layers}
        self._targets, self._init_feeds = [], {}
        self.names = term_names(recipe)
        weights = term_weights(recipe)

        def layer_inputs(layers, strengths):
            """The features a term reads: with jcjohnson's -normalize_gradients, each layer's own gradient
            is normalised at the strength it has in the total."""
            if not recipe.normalize_gradients:
                return features
            return {layer: _normalised_gradient(features[layer], s) for layer, s in zip(layers, strengths)}

        content = ContentTerm.of(recipe)
        sums = content.position_sums(
            layer_inputs(content.layers, [weights["content"] * w for w in content.weights]),
            {layer: self._hold(f"content_{layer}", content_targets[layer]) for layer in content.layers})
        terms = {"content": content.score(sums, content.coefficients(shapes))}
        style = []
        for k, aim in enumerate(style_targets):
            term = StyleTerm.of(recipe, aim.weight, aim.masks)
            masks = None if aim.masks is None else {layer: self._hold(f"mask_{k}_{layer}", aim.masks[layer])
                                                    for layer in term.layers}
            sums = term.position_sums(
                layer_inputs(term.layers, [weights["style"] * aim.weight * w for w in term.weights]), masks)
            grams = {layer: self._hold(f"gram_{k}_{layer}", aim.grams[layer]) for layer in term.layers}
            style.append(term.score(sums, term.coefficients(shapes, image_shape), grams))
        terms["style"] = tf.add_n(style)
        if "tv" in self.names:
            terms["tv"] = total_variation(image, recipe.tv_form)
        self.terms = tf.stack([terms[name] for name in self.names], name="terms")
        self.adjust, total, self.total = weigh(recipe, self.terms)
        self.gradient = tf.gradients(total, image)[0]

    def _hold(self, name, value):
        var, feed = _held(name, np.asarray(value, np.float32))
        self._targets.append(var)
        self._init_feeds.update(feed)
        return var

    def initialise(self, session):
        """Load the targets into their variables (once per run)."""
        session.run([v.initializer for v in self._targets], feed_dict=self._init_feeds)
        self._init_feeds = {}


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
