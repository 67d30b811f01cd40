"""The exact loss and gradient of a large image, computed tile by tile: print sizes in the memory of a tile.

Every term but the total variation is a function of sums over positions (terms.py): a style layer's raw
Gram Σ_p f_p f_pᵀ, a content layer's Σ_p (F_p − P_p)². So two passes over overlapping tiles give exactly the
untiled numbers, with the untiled terms' own scores:

1. each tile runs the network and returns the terms' `position_sums` over the positions it OWNS (its
   interior); their sums over tiles are the whole image's. The terms' `score`s and `weigh` turn them into the
   terms and the total, in a small float64 graph of their own, which also gives dtotal/dsums (for a style
   layer a C×C matrix, for a content layer a number);
2. each tile runs again and back-propagates Σ <dtotal/dsum, sum(interior)> with those factors held fixed.
   By the chain rule the image gradient is the sum over tiles of these shares' gradients, each a function of
   the tile's pixels only, so it is the sum of the tiles' input-gradients, halos included (a halo pixel
   feeds the interior features of its neighbour as well as its own tile's).

Why it is exact: a tile is the interior plus a halo; SAME padding makes the features wrong near a cut edge,
one more position per 3 × 3 convolution, halved (rounded up) by each 2 × 2 pool. `halo()` follows that count
to the deepest layer, so every interior position of every layer sees exactly the pixels it sees untiled and
back-propagates through exactly those positions. Tiles start on the deepest layer's pooling grid (a
multiple of 2^pools) so pooling windows are the untiled ones; at the image's own border a tile has no halo,
so the padding there is the untiled network's zero padding. What differs is only the order of float32 sums.
Total variation is local to the image and cheap: the score graph computes it on the whole image.
"""
from dataclasses import dataclass

import numpy as np

from .network import VGG
from .runtime import tf
from .terms import ContentTerm, StyleTerm, gram_divisor, total_variation, weigh
from ..errors import UserError
from ..recipes import term_names
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
        self.names = term_names(recipe)
        self.content_term, self.style_term = ContentTerm.of(recipe), StyleTerm.of(recipe)
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
            self._targets = {layer: tf.compat.v1.placeholder(tf.float32, (1, None, None, self.channels[layer]),
                                                             name=f"target_{layer}")
                             for layer in recipe.content_layers}
            # Pass 1: the sums over the interior's positions
            self._sums = {"content": self.content_term.position_sums(self._crops, self._targets),
                          "style": self.style_term.position_sums(self._crops)}
            self._build_score()
            # Pass 2: the tile's share of the total, linearised in its sums at the whole image's dtotal/dsums
            self._dsums = [tf.compat.v1.placeholder(tf.float32, s.shape) for s in tf.nest.flatten(self._sums)]
            share = tf.add_n([tf.reduce_sum(d * s) for d, s in zip(self._dsums, tf.nest.flatten(self._sums))])
            self._tile_gradient = tf.gradients(share, self._x)[0][0]
            self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.graph.finalize()

    def _build_score(self):
        """The whole image's terms, total and dtotal/dsums from the sums gathered over the tiles, with the
        untiled objective's own scores, in float64; the coefficients depend on the image size, so they are fed."""
        self._gathered = tf.nest.map_structure(lambda s: tf.compat.v1.placeholder(tf.float64, s.shape), self._sums)
        self._coefficients = tf.nest.map_structure(lambda _: tf.compat.v1.placeholder(tf.float64, ()),
                                                   self._term_coefficients(self.align, self.align))  # any size
        self._style_grams = {layer: tf.compat.v1.placeholder(tf.float64, (self.channels[layer],) * 2)
                             for layer in self.recipe.style_layers}
        terms = {"content": self.content_term.score(self._gathered["content"], self._coefficients["content"]),
                 "style": self.style_term.score(self._gathered["style"], self._coefficients["style"],
                                                self._style_grams)}
        inputs = tf.nest.flatten(self._gathered)
        self._image = None
        if "tv" in self.names:
            self._image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="image")
            terms["tv"] = tf.cast(total_variation(self._image, self.recipe.tv_form), tf.float64)
            inputs.append(self._image)
        self._terms = tf.stack([terms[name] for name in self.names])
        self._adjust, total, self._total = weigh(self.recipe, self._terms)
        self._score_gradients = tf.gradients(total, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)

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
        for _, _, values in self._runs(image, self._sums["style"]):
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
                divisor = gram_divisor(self.recipe.gram_norm, positions, self.channels[layer])
                grams[layer] = grams[layer] + weight * (raw / divisor)
        return features, grams

    def hold(self, content_targets, style_targets):
        """Targets for every later evaluation (the untiled Objective's constructor arguments)."""
        self._content_targets = {layer: np.asarray(content_targets[layer], np.float32)
                                 for layer in self.recipe.content_layers}
        self._style_targets = {layer: np.asarray(style_targets[layer], np.float64)
                               for layer in self.recipe.style_layers}

    def _term_coefficients(self, height, width):
        """The terms' coefficients for an image of this size, as the untiled objective computes them."""
        shapes = {layer: (1, height >> pools_before(layer), width >> pools_before(layer), self.channels[layer])
                  for layer in self.recipe.layers}
        return {"content": self.content_term.coefficients(shapes),
                "style": self.style_term.coefficients(shapes, (1, height, width, 3))}

    def _score_feed(self, image, adjust=None):
        """The score graph's feed for an (H, W, 3) image: the sums gathered over its tiles (one forward pass
        each), the coefficients of its size, the targets, the image itself for the TV and `adjust` if given."""
        gathered = [0.0] * len(tf.nest.flatten(self._sums))
        for _, _, values in self._runs(image, tf.nest.flatten(self._sums), self._target_feed):
            gathered = [total + np.asarray(value, np.float64) for total, value in zip(gathered, values)]
        feed = dict(zip(tf.nest.flatten(self._gathered), gathered))
        coefficients = self._term_coefficients(*image.shape[:2])
        feed.update(zip(tf.nest.flatten(self._coefficients), tf.nest.flatten(coefficients)))
        feed.update({self._style_grams[layer]: target for layer, target in self._style_targets.items()})
        if self._image is not None:
            feed[self._image] = image[None]
        if adjust is not None:
            feed[self._adjust] = adjust
        return feed

    def terms(self, image):
        """The raw terms (in the order of `names`) of an (H, W, 3) image: one forward pass over the tiles."""
        return self.session.run(self._terms, self._score_feed(np.asarray(image, np.float32)))

    def evaluate(self, image, adjust=None):
        """(total, terms, adjust, gradient (H, W, 3) float32) of an (H, W, 3) RGB image, as the untiled
        WholeImageObjective returns them (terms and adjust in the order of `names`); `adjust` as
        terms.weigh's: given, it is held fixed (L-BFGS within a restart)."""
        image = np.asarray(image, np.float32)
        total, terms, adjust, gradients = self.session.run(
            (self._total, self._terms, self._adjust, self._score_gradients), self._score_feed(image, adjust))
        feed = dict(zip(self._dsums, gradients))
        gradient = np.zeros(image.shape, np.float32)
        if self._image is not None:  # the TV's gradient, on the whole image
            gradient += gradients[-1][0]
        for rows, cols, value in self._runs(image, self._tile_gradient,
                                            lambda rows, cols: {**feed, **self._target_feed(rows, cols)}):
            gradient[rows.start:rows.stop, cols.start:cols.stop] += value
        return float(total), terms, adjust, gradient

    def close(self):
        self.session.close()
