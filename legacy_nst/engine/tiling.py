"""The exact loss and gradient of a large image, computed tile by tile: print sizes in the memory of a tile.

Every term a recipe uses is a function of sums over positions: a style layer's Gram is Σ_p f_p f_pᵀ, a
content term Σ_p (F_p − P_p)². So two passes over overlapping tiles give exactly the untiled numbers:

1. each tile runs the network and returns the raw Gram and the squared content error of the positions it
   OWNS (its interior); the sums over tiles are the whole image's, from which the terms, the total and
   dL/dG_l (a C×C matrix per style layer) follow in numpy;
2. each tile runs again and back-propagates Σ_l <dL/dG_l, G_l(interior)> + Σ_c λ_c · content error(interior)
   with those factors held fixed. L is the sum of these tile contributions, each a function of the tile's
   pixels only, so the whole image's gradient is the sum of the tiles' input-gradients, halos included
   (a halo pixel feeds the interior features of its neighbour as well as its own tile's).

Why it is exact: a tile is the interior plus a halo; SAME padding makes the features wrong near a cut edge,
one more position per 3 × 3 convolution, halved (rounded up) by each 2 × 2 pool. `halo()` follows that count
to the deepest layer, so every interior position of every layer sees exactly the pixels it sees untiled and
back-propagates through exactly those positions. Tiles start on the deepest layer's pooling grid (a
multiple of 2^pools) so pooling windows are the untiled ones; at the image's own border a tile has no halo,
so the padding there is the untiled network's zero padding. What differs is only the order of float32 sums.
Total variation is local to the image and cheap: it is computed on the whole image.
"""
from dataclasses import dataclass

import numpy as np

from . import terms
from .terms import ADAPTIVE_EPS
from .network import VGG
from .runtime import tf
from ..errors import UserError
from ..recipes import term_names, term_weights
from ..vgg.architecture import conv_shapes, deepest_layer, halo, pools_before


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the pixels fed to the network and the interior whose terms it owns."""

    start: int
    stop: int
    inner_start: int
    inner_stop: int

    def inner(self, level):
        """The interior in the coordinates of a layer `level` pools deep, relative to the tile."""
        return (self.inner_start - self.start) >> level, (self.inner_stop - self.start) >> level

    def owned(self, level):
        """The interior in that layer's coordinates of the whole image."""
        return self.inner_start >> level, self.inner_stop >> level


def spans(length, tile, halo_px, align):
    """Tiles of equal interiors (multiples of `align`, at most `tile`) covering 0..length, with halos.

    Starts on multiples of `align`, so a floor-rounded pool at the image's end drops what it drops untiled:
    (stop − start) >> k = (stop >> k) − (start >> k) whenever start is a multiple of 2^k."""
    count = -(-length // tile)
    size = -(-(-(-length // count)) // align) * align
    return [Span(max(a - halo_px, 0), min(a + size + halo_px, length), a, min(a + size, length))
            for a in range(0, length, size)]


def gram_factor(norm, positions, channels):
    """The Gram normalisation (terms.gram) as a factor on the raw Σ f fᵀ over `positions` positions."""
    return {"raw": 1.0, "positions": 1.0 / positions, "elements": 1.0 / (positions * channels)}[norm]


def content_factor(form, elements):
    """terms.squared_error's form as a factor on Σ(F − P)² over `elements` numbers."""
    return {"mean": 1.0 / elements, "half-sum": 0.5, "sum": 1.0}[form]


class TiledObjective:
    """The recipe's total, terms and image gradient for any image size, in tiles of at most `tile` px.

        objective = TiledObjective(recipe, params, tile=512)
        objective.hold(*objective.targets(content, styles, blend))
        total, terms, adjust, gradient = objective.evaluate(image)   # image (H, W, 3) float32 RGB 0..255

    One graph (spatial sizes None, so every tile shape shares it) and one Session; memory is that of one
    tile plus a few image-sized arrays. `conv` as network.VGG's (None: this machine's default;
    transfer.TiledTransfer passes the device's). `evaluate` costs one forward pass more than the untiled
    Objective, on tiles enlarged by their halos."""

    def __init__(self, recipe, params, tile=512, config=None, conv=None):
        self.recipe = recipe
        self.names, self.weights = term_names(recipe), term_weights(recipe)
        deepest = deepest_layer(recipe.network, recipe.layers)
        self.halo, self.align = halo(recipe.network, deepest)
        if tile < self.align:
            raise UserError(f"tile size {tile} px is below {self.align} px, the pooling grid of {deepest}; "
                            f"use a tile of at least {self.align} px")
        self.tile = tile // self.align * self.align
        self.channels = {layer: conv_shapes(recipe.network)[layer][1][0] for layer in recipe.layers}
        self._content_targets = self._style_targets = None
        self.graph = tf.Graph()
        with self.graph.as_default():
            vgg = VGG(recipe.network, params, deepest, recipe.pooling, conv=conv)
            self._x = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="tile")
            self._box = tf.compat.v1.placeholder(tf.int32, (4,), name="interior")  # rows, cols, in tile pixels
            features = vgg(self._x)
            self._crops = {}
            for layer in recipe.layers:
                r0, r1, c0, c1 = tf.unstack(self._box // (2 ** pools_before(layer)))
                self._crops[layer] = features[layer][:, r0:r1, c0:c1, :]
            self._grams = {layer: terms.gram(self._crops[layer], "raw") for layer in recipe.style_layers}
            self._targets = {layer: tf.compat.v1.placeholder(tf.float32, (1, None, None, self.channels[layer]),
                                                             name=f"target_{layer}")
                             for layer in recipe.content_layers}
            self._errors = {layer: terms.squared_error(self._crops[layer], self._targets[layer], "sum")
                            for layer in recipe.content_layers}
            # Pass 2: the tile's share of the total, linearised in the Grams at the whole image's dL/dG.
            self._dgram = {layer: tf.compat.v1.placeholder(tf.float32, (self.channels[layer],) * 2)
                           for layer in recipe.style_layers}
            self._derror = {layer: tf.compat.v1.placeholder(tf.float32, ()) for layer in recipe.content_layers}
            share = tf.add_n([tf.reduce_sum(self._dgram[l] * self._grams[l]) for l in recipe.style_layers]
                             + [self._derror[l] * self._errors[l] for l in recipe.content_layers])
            self._tile_gradient = tf.gradients(share, self._x)[0][0]
            self._tv = None
            if recipe.tv_form != "none":
                self._image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="image")
                self._tv = terms.total_variation(self._image, recipe.tv_form)
                self._tv_gradient = tf.gradients(self._tv, self._image)[0][0]
            self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.graph.finalize()

    def tiles(self, height, width):
        """(row span, column span) of every tile of an image of this size."""
        rows = spans(height, self.tile, self.halo, self.align)
        cols = spans(width, self.tile, self.halo, self.align)
        return [(r, c) for r in rows for c in cols]

    def _runs(self, image, fetches, feed=None):
        """Yield (rows, cols, values) of `fetches` run on every tile; `feed(rows, cols)` adds to the feed."""
        for rows, cols in self.tiles(*image.shape[:2]):
            tile_feed = {self._x: image[None, rows.start:rows.stop, cols.start:cols.stop],
                         self._box: rows.inner(0) + cols.inner(0)}
            if feed is not None:
                tile_feed.update(feed(rows, cols))
            yield rows, cols, self.session.run(fetches, tile_feed)

    def _target_feed(self, rows, cols):
        feed = {}
        for layer, target in self._content_targets.items():
            (r0, r1), (c0, c1) = rows.owned(pools_before(layer)), cols.owned(pools_before(layer))
            feed[self._targets[layer]] = target[:, r0:r1, c0:c1]
        return feed

    def _raw_grams(self, image):
        grams = {layer: 0.0 for layer in self.recipe.style_layers}
        for _, _, values in self._runs(image, self._grams):
            for layer, value in values.items():
                grams[layer] = grams[layer] + value.astype(np.float64)
        return grams

    def targets(self, content, styles, blend=None):
        """({content layer: features of `content`}, {style layer: blended normalised Gram of `styles`}),
        as Transfer computes them untiled; images of any size (H, W, 3)."""
        content = np.asarray(content, np.float32)
        features = {layer: np.zeros((1, content.shape[0] >> pools_before(layer),
                                     content.shape[1] >> pools_before(layer), self.channels[layer]), np.float32)
                    for layer in self.recipe.content_layers}
        crops = {layer: self._crops[layer] for layer in self.recipe.content_layers}
        for rows, cols, values in self._runs(content, crops):
            for layer, value in values.items():
                (r0, r1), (c0, c1) = rows.owned(pools_before(layer)), cols.owned(pools_before(layer))
                features[layer][:, r0:r1, c0:c1] = value
        blend = np.asarray(blend if blend is not None else [1.0] * len(styles), np.float64)
        blend = blend / blend.sum()
        grams = {layer: 0.0 for layer in self.recipe.style_layers}
        for weight, style in zip(blend, styles):
            style = np.asarray(style, np.float32)
            for layer, raw in self._raw_grams(style).items():
                level = pools_before(layer)
                positions = (style.shape[0] >> level) * (style.shape[1] >> level)
                grams[layer] = grams[layer] + weight * gram_factor(self.recipe.gram_norm, positions,
                                                                   self.channels[layer]) * raw
        return features, grams

    def hold(self, content_targets, style_targets):
        """Targets for every later evaluation (the untiled Objective's constructor arguments)."""
        self._content_targets = {layer: np.asarray(content_targets[layer], np.float32)
                                 for layer in self.recipe.content_layers}
        self._style_targets = {layer: np.asarray(style_targets[layer], np.float64)
                               for layer in self.recipe.style_layers}

    def _pass_one(self, image):
        """(terms, dterms/dG_raw per style layer, dterms/d error per content layer) from one forward pass."""
        r = self.recipe
        height, width = image.shape[:2]
        grams = {layer: 0.0 for layer in r.style_layers}
        errors = {layer: 0.0 for layer in r.content_layers}
        for _, _, (tile_grams, tile_errors) in self._runs(image, (self._grams, self._errors), self._target_feed):
            for layer, value in tile_grams.items():
                grams[layer] = grams[layer] + value.astype(np.float64)
            for layer, value in tile_errors.items():
                errors[layer] += float(value)
        content, derror = 0.0, {}
        for layer, weight in zip(r.content_layers, terms.layer_weights(r.content_layers, r.content_layer_weights)):
            level = pools_before(layer)
            factor = weight * content_factor(r.content_form,
                                             (height >> level) * (width >> level) * self.channels[layer])
            content += factor * errors[layer]
            derror[layer] = factor
        style, dgram = 0.0, {}
        for layer, weight in zip(r.style_layers, terms.layer_weights(r.style_layers, r.style_layer_weights)):
            level, channels = pools_before(layer), self.channels[layer]
            shape = (1, height >> level, width >> level, channels)
            norm = gram_factor(r.gram_norm, shape[1] * shape[2], channels)
            diff = norm * grams[layer] - self._style_targets[layer]
            factor = weight * terms.style_norm_factor(r.style_norm, shape, (1, height, width, 3), r.style_norm_size)
            if r.style_form == "mean":
                factor /= channels**2
            style += factor * np.sum(np.square(diff))
            dgram[layer] = (2.0 * factor * norm) * diff
        values = {"content": content, "style": style}
        if self._tv is not None:
            values["tv"] = float(self.session.run(self._tv, {self._image: image[None]}))
        return np.array([values.get(name, 0.0) for name in self.names]), dgram, derror

    def terms(self, image):
        """The raw terms (in the order of `names`) of an (H, W, 3) image: one forward pass over the tiles."""
        return self._pass_one(np.asarray(image, np.float32))[0]

    def evaluate(self, image, adjust=None):
        """(total, terms, adjust, gradient (H, W, 3) float32) of an (H, W, 3) RGB image, as the untiled
        objective's GraphEvaluation returns them (terms and adjust in the order of `names`).

        `adjust` as the Objective's: default 1, or 1 / (terms + 1e-10) for an adaptive recipe; given, it is
        held fixed (L-BFGS within a restart)."""
        image = np.asarray(image, np.float32)
        terms, dgram, derror = self._pass_one(image)
        if adjust is None:
            adjust = 1.0 / (terms + ADAPTIVE_EPS) if self.recipe.adaptive_weights else np.ones(len(terms))
        adjust = np.asarray(adjust, np.float64)
        scale = dict(zip(self.names, np.array([self.weights[name] for name in self.names]) * adjust))
        feed = {self._dgram[layer]: scale["style"] * value for layer, value in dgram.items()}
        feed.update({self._derror[layer]: scale["content"] * value for layer, value in derror.items()})
        gradient = np.zeros(image.shape, np.float32)
        if self._tv is not None:
            gradient += scale["tv"] * self.session.run(self._tv_gradient, {self._image: image[None]})
        for rows, cols, value in self._runs(image, self._tile_gradient,
                                            lambda rows, cols: {**feed, **self._target_feed(rows, cols)}):
            gradient[rows.start:rows.stop, cols.start:cols.stop] += value
        return float(sum(scale[name] * term for name, term in zip(self.names, terms))), terms, adjust, gradient

    def close(self):
        self.session.close()
