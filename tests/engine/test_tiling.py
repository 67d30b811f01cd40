"""The tiled objective against the untiled one (itself checked against numpy in test_losses.py).

Layers are cut to blocks 3-4 where the recipe allows, so that at 96 × 128 px in 64 px tiles the halos
(16-40 px) are narrower than the image and tiles really cut the network's padding; one deep recipe keeps
VGG19 to block5_conv2 (halo 96 px: every tile reads the whole image and only owns a part of it).
"""
import dataclasses
import functools
import re

import numpy as np
import pytest
import tensorflow as tf
from support import run_main, synthetic_weights, write_pair

from legacy_nst import Job, LevelStarted, recipes, run
from legacy_nst.engine import terms as losses
from legacy_nst.engine import tiling
from legacy_nst.engine.network import VGG
from legacy_nst.engine.optimisers import WholeImageObjective
from legacy_nst.errors import UserError
from legacy_nst.runner import memory
from legacy_nst.runner.loop import prepare
from legacy_nst.vgg import architecture, weights
from legacy_nst.vgg.architecture import deepest_layer

# Tiled against untiled, float32 sums in another order. Largest relative errors measured on the AVX2 AMD EPYC
# (plain / transposed convolution): totals 1.4e-7 / 9.2e-8, terms 4.6e-7 / 3.9e-7, gradients 6.8e-6 / 8.5e-7,
# style targets 4.4e-7 / 3.6e-7, content targets 0; passed unchanged on the AVX-512 Xeon of earlier rounds.
# Both sides build their convolutions alike (compare's `conv`): a ReLU gradient is a step at 0, so features
# that differ in their last bits (transposed against forward convolution: 5e-7) flip some of its mask, and
# the gradients then differ by 1.1e-3 untiled (99 × 130 px, gatys2016, one thread, AVX2) - not a tiling error.
RTOL = 2e-5


@functools.lru_cache(maxsize=None)
def synthetic(network):
    return synthetic_weights(network, seed=3)


def fast_config():
    """Grappler costs seconds per new set of fetches on these small graphs; the math is the same."""
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0})
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def pictures(shape, seed, count=3):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.0, 255.0, shape).astype(np.float32) for _ in range(count)]


def untiled(recipe, params, content, style, image, adjust=None, conv=None):
    """(total, terms, gradient, content targets, style targets) of the untiled losses.Objective, its
    convolutions in the formulation `conv` (network.CONVS; None: the machine's default)."""
    graph = tf.Graph()
    with graph.as_default():
        deepest = deepest_layer(recipe.network, recipe.layers)
        vgg = VGG(recipe.network, params, deepest, recipe.pooling, conv=conv)
        probe = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
        features = vgg(probe)
        grams = {layer: losses.gram(features[layer], recipe.gram_norm) for layer in recipe.style_layers}
        x = tf.compat.v1.placeholder(tf.float32, (1,) + image.shape)
        with tf.compat.v1.Session(graph=graph, config=fast_config()) as session:
            content_targets = session.run({l: features[l] for l in recipe.content_layers}, {probe: content[None]})
            style_targets = session.run(grams, {probe: style[None]})
            objective = losses.Objective(vgg, x, recipe, content_targets, [losses.StyleTarget(1.0, style_targets)])
            objective.initialise(session)
            total, terms, _, gradient = WholeImageObjective(session, objective, x).evaluate(image, adjust)
    return total, terms, gradient, content_targets, style_targets


def relative_error(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def assert_same(tiled_result, untiled_result):
    total, terms, _, gradient = tiled_result
    assert total == pytest.approx(untiled_result[0], rel=RTOL)
    np.testing.assert_allclose(terms, untiled_result[1], rtol=RTOL)
    assert relative_error(gradient, untiled_result[2]) < RTOL


def compare(recipe, params, shape, tile, seed=0, adjust=None, conv="transposed"):
    content, style, image = pictures(shape, seed)
    expected = untiled(recipe, params, content, style, image, adjust, conv)
    objective = tiling.TiledObjective(recipe, params, tile=tile, config=fast_config(), conv=conv)
    try:
        objective.hold(expected[3], expected[4])
        return objective, objective.evaluate(image, adjust), expected
    finally:
        objective.close()


def shrink(name, **changes):
    return dataclasses.replace(recipes.RECIPES[name], **changes).check()


CASES = {
    # deep: VGG19 to block5_conv2, Gram ÷ H·W, mean terms, Adam's recipe (the tiles overlap entirely)
    "tf-eager-blog": shrink("tf-eager-blog"),
    # raw Gram, image scale, content sum, keras TV, style weight squared; block 4 (halo 32 px)
    "keras-lbfgs": shrink("keras-lbfgs", content_layers=("block4_conv1",), style_layers=recipes.CONV1_LAYERS[:4],
                          style_weight=1.5),
    # average pooling, layer scale, half-sum (halo 40 px)
    "gatys2016": shrink("gatys2016", style_layers=recipes.CONV1_LAYERS[:4]),
    # VGG16, adaptive weights, denoise TV, per-layer weights (halo 20 px)
    "hvass-vgg16": shrink("hvass-vgg16", style_layers=tuple(str(i) for i in range(7)),
                          style_layer_weights=(1, 2, 3, 4, 5, 6, 7)),
    # Gram ÷ C·H·W, style sum, l2 TV, a layer both content and style (halo 16 px)
    "preview-l2": shrink("preview", content_layers=("block3_conv1",), tv_form="l2", tv_weight=1e-2),
    # jcjohnson's TV: its gradient pulls, but the reported total leaves it out
    "tv-not-in-loss": shrink("preview", content_layers=("block3_conv1",), tv_form="torch", tv_weight=1e-2,
                             tv_in_loss=False),
    # mean style with elements norm, max pooling, half-sum content on block 1
    "keras-gd-noise": shrink("keras-gd-noise", style_layers=recipes.CONV1_LAYERS[1:4],
                             style_layer_weights=(0.5, 0.25, 0.2), style_form="mean", gram_norm="elements"),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_untiled(name):
    recipe = CASES[name]
    objective, result, expected = compare(recipe, synthetic(recipe.network), (96, 128, 3), tile=64)
    assert len(objective.tiles(96, 128)) == 4
    assert_same(result, expected)


def test_the_gpu_convolution_tiles_alike():
    """A tiled run on a GPU builds plain Conv2D (network.default_conv); here on the CPU, against the untiled
    plain-convolution objective."""
    recipe = CASES["preview-l2"]
    _, result, expected = compare(recipe, synthetic("vgg19"), (64, 96, 3), tile=32, conv="plain")
    assert_same(result, expected)


def test_uneven_tiles_and_odd_sizes():
    """99 × 130 px in 40 px tiles: the last interiors are 19 and 10 px, and the pools drop the last rows."""
    recipe = CASES["gatys2016"]
    objective, result, expected = compare(recipe, synthetic("vgg19"), (99, 130, 3), tile=40, seed=1)
    rows, cols = zip(*objective.tiles(99, 130))
    assert {r.inner_stop - r.inner_start for r in rows} == {40, 19} and rows[-1].inner_stop == 99
    assert {c.inner_stop - c.inner_start for c in cols} == {40, 10} and cols[-1].inner_stop == 130
    assert_same(result, expected)


def test_fed_adjust_is_held():
    recipe = CASES["hvass-vgg16"]
    adjust = np.array([0.5, 2e-3, 7.0], np.float32)
    _, result, expected = compare(recipe, synthetic("vgg16"), (64, 72, 3), tile=32, adjust=adjust)
    assert_same(result, expected)


def test_single_tile_equals_untiled():
    recipe = CASES["keras-lbfgs"]
    content, style, image = pictures((48, 64, 3), 7)
    expected = untiled(recipe, synthetic("vgg19"), content, style, image)
    objective = tiling.TiledObjective(recipe, synthetic("vgg19"), tile=512, config=fast_config())
    objective.hold(expected[3], expected[4])
    assert objective.tiles(48, 64) == [(tiling.Span(0, 48, 0, 48), tiling.Span(0, 64, 0, 64))]
    result = objective.evaluate(image)
    assert_same(result, expected)
    np.testing.assert_array_equal(objective.terms(image), result[1])  # the forward pass alone
    objective.close()


def test_genuine_weights_preview(real_weights):
    recipe = recipes.RECIPES["preview"].check()
    params = weights.load_weights(real_weights, "vgg19", recipe.layers)
    objective, result, expected = compare(recipe, params, (96, 128, 3), tile=32, seed=2)
    assert len(objective.tiles(96, 128)) == 12
    assert_same(result, expected)


def test_a_narrower_halo_is_wrong():
    """The halo is the least that works: one pooling step narrower (12 px instead of 16 for block3_conv2)
    leaves one wrong position per cut edge of block3_conv2, and the gradient error grows ≈ 200-fold
    (measured 2.9e-4 against 1.3e-6)."""
    recipe = shrink("preview")
    params = synthetic("vgg19")
    content, style, image = pictures((64, 64, 3), 4)
    expected = untiled(recipe, params, content, style, image)
    objective = tiling.TiledObjective(recipe, params, tile=32, config=fast_config())
    objective.hold(expected[3], expected[4])
    assert (objective.halo, objective.align) == (16, 4)
    right = relative_error(objective.evaluate(image)[3], expected[2])
    objective.halo = 12
    wrong = relative_error(objective.evaluate(image)[3], expected[2])
    objective.close()
    assert right < RTOL < wrong and wrong > 50 * right


def test_targets_match_untiled():
    """Content features stitched from tile interiors and Grams summed over tiles, a style of another size."""
    recipe = CASES["keras-lbfgs"]
    params = synthetic("vgg19")
    content = pictures((96, 128, 3), 5, 1)[0]
    styles = pictures((72, 56, 3), 6, 2)
    *_, content_targets, grams_a = untiled(recipe, params, content, styles[0], content)
    *_, _, grams_b = untiled(recipe, params, content, styles[1], content)
    objective = tiling.TiledObjective(recipe, params, tile=32, config=fast_config())
    features, grams = objective.targets(content, styles, blend=[3.0, 1.0])
    objective.close()
    for layer in recipe.content_layers:
        assert features[layer].shape == content_targets[layer].shape
        assert relative_error(features[layer], content_targets[layer]) < RTOL
    for layer in recipe.style_layers:
        assert relative_error(grams[layer], 0.75 * grams_a[layer] + 0.25 * grams_b[layer]) < RTOL


@pytest.mark.parametrize("network, deepest, expected", [
    ("vgg19", "block1_conv1", (1, 1)), ("vgg19", "block1_conv2", (2, 1)), ("vgg19", "block2_conv1", (4, 2)),
    ("vgg19", "block3_conv2", (16, 4)), ("vgg19", "block4_conv1", (32, 8)), ("vgg19", "block5_conv2", (96, 16)),
    ("vgg16", "block5_conv3", (96, 16)), ("vgg16", "block3_conv3", (20, 4))])
def test_halo_by_hand(network, deepest, expected):
    """Counted by hand: +1 wrong position per conv, ⌈/2⌉ per pool; e.g. VGG19 block2_conv1: 2 → 1 → 2 at ½."""
    assert architecture.halo(network, deepest) == expected


@pytest.mark.parametrize("length, tile", [(1, 16), (99, 40), (128, 64), (130, 16), (1000, 512), (4096, 512)])
def test_spans_cover_and_align(length, tile):
    halo, align = 24, 8
    tile_spans = tiling.spans(length, tile, halo, align)
    assert tile_spans[0].inner_start == 0 and tile_spans[-1].inner_stop == length
    for before, after in zip(tile_spans, tile_spans[1:]):
        assert before.inner_stop == after.inner_start
    for span in tile_spans:
        assert span.start % align == 0 and span.inner_start % align == 0
        assert 0 < span.inner_stop - span.inner_start <= max(tile, align)
        assert span.start == max(span.inner_start - halo, 0) and span.stop == min(span.inner_stop + halo, length)


def test_tile_below_the_pooling_grid_is_refused():
    with pytest.raises(UserError, match="at least 16 px"):
        tiling.TiledObjective(CASES["tf-eager-blog"], synthetic("vgg19"), tile=8)


# ------------------------------------------------------------------------------- tiles in the run loop

def preview_job(real_weights, **changes):
    """The preview recipe on two small pictures (the content 96 × 128 px), genuine partial VGG19."""
    content, style = pictures((96, 128, 3), 8, 2)
    settings = dict(content=content, styles=[style], recipe="preview", weights=str(real_weights), device="cpu",
                    overrides={"size": 128, "iterations": 8})
    settings.update(changes)
    return Job(**settings)


def totals(result):
    return np.array([row["total"] for row in result.history])


@pytest.mark.parametrize("optimizer", ["lbfgs", "descent"])
def test_a_tiled_run_follows_the_untiled_one(real_weights, optimizer):
    """12 tiles of 32 px (halo 16): the same losses evaluation by evaluation and the same image at the end,
    to float32 precision (the sums' order is the only difference, and the optimiser amplifies it little in
    eight steps)."""
    overrides = {"size": 128, "iterations": 8, "optimizer": optimizer, "learning_rate": 1.0}
    events = []
    tiled = run(preview_job(real_weights, tile=32, overrides=overrides), events.append)
    untiled = run(preview_job(real_weights, overrides=overrides))
    started = [e for e in events if isinstance(e, LevelStarted)]
    assert [(e.tile, e.tiled_because) for e in started] == [(32, "asked for with --tile")]
    assert tiled.finished and untiled.finished and len(tiled.history) == len(untiled.history) >= 8
    # measured 1.1e-6 plain / 1.5e-6 transposed (AVX2)
    np.testing.assert_allclose(totals(tiled), totals(untiled), rtol=1e-4)
    assert totals(tiled)[-1] < 0.8 * totals(tiled)[0]  # it optimised
    assert np.max(np.abs(tiled.image - untiled.image)) < 0.05  # measured 3.1e-5 / 1.5e-5 levels (AVX2)


def test_the_cli_says_when_it_tiles(real_weights, tmp_path, capsys):
    content, style = write_pair(tmp_path, (48, 64))
    code, _, err = run_main(["--recipe", "preview", "--size", 64, "--iterations", 2, "--content", content,
                             "--style", style, "--weights", real_weights, "--output", tmp_path / "o.png",
                             "--tile", 16], capsys)
    assert code == 0, err
    assert "64×48 px in 16 px tiles, exact (tiling.py; asked for with --tile)" in err
    assert (tmp_path / "o.png").is_file()


def estimate(recipe, height, width, tile=None):
    return memory.estimate_bytes(recipe.network, recipe.layers, height, width, recipe.optimizer, tile,
                                 recipe.content_layers, recipe.lbfgs_bounds)


def test_tiles_are_chosen_only_when_one_graph_would_not_fit(real_weights, monkeypatch):
    """At 4096 × 3072 px (nothing is allocated before the run starts): the machine pretends to have just
    what 512 px tiles need, then just what one graph needs."""
    preview = recipes.get("preview")
    plan_at = lambda available: (monkeypatch.setattr(memory, "available_bytes", lambda: available),  # noqa: E731
                                 prepare(preview_job(real_weights, overrides={"size": 4096})))[1]
    plan = plan_at(estimate(preview, 3072, 4096, 512))
    (tile, why), = plan.tiles
    assert tile == 512 and why.startswith("untiled, 4096×3072 px needs about ")
    assert plan_at(estimate(preview, 3072, 4096)).tiles == (None,)


# tf-eager-blog (the Adam recipe) on the layers blocks 1-3 hold, so that its depth is not what is refused
ADAM_ON_BLOCKS_1_3 = {"content_layers": ("block3_conv2",),
                      "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1")}


@pytest.mark.parametrize("changes, message", [
    ({"recipe": "tf-eager-blog", "overrides": {"size": 4096, **ADAM_ON_BLOCKS_1_3}},
     "cannot run in tiles (Adam keeps the image in the graph; use --optimizer lbfgs); the largest long side"),
    ({"overrides": {"size": 4096, "normalize_gradients": True}},
     "cannot run in tiles (--normalize-gradients needs each layer's whole gradient)"),
    ({"tile": 2}, "--tile 2: below 4 px, the pooling grid"),
    ({"recipe": "tf-eager-blog", "overrides": ADAM_ON_BLOCKS_1_3, "tile": 64},
     "--tile: tf-eager-blog cannot run in tiles: Adam"),
])
def test_what_cannot_be_tiled_is_refused_up_front(real_weights, monkeypatch, changes, message):
    # the machine has what 512 px tiles of the preview need: less than one 4096 px graph of either recipe
    monkeypatch.setattr(memory, "available_bytes", lambda: estimate(recipes.get("preview"), 3072, 4096, 512))
    with pytest.raises(UserError, match=re.escape(message)) as error:
        prepare(preview_job(real_weights, **changes))
    assert "\n" not in str(error.value)
