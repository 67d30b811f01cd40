"""Spatial control (Gatys et al. 2017): mask files, masks carried down VGG, and guided Grams.

Oracles: a numpy (F·m)ᵀ(F·m) and its analytic gradient; block means of the mask for the "simple" mode;
for "inside", the authors' own definition, probed through the network: a position is inside when no
change of the pixels outside the region changes its activation; and for the guided Grams of a two-style
image, the plain Grams of the two styles each on its own.

Tolerances: the figure beside each is the largest error measured on the AVX2 AMD EPYC, relative unless it
says otherwise (none of them runs a convolution, so the conv path does not enter); every one passed unchanged
on the AVX-512 Xeon of earlier rounds.
"""
import functools

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage.measure import block_reduce
from support import synthetic_weights

from legacy_nst import images, recipes
from legacy_nst.engine import network
from legacy_nst.engine import terms as losses
from legacy_nst.errors import UserError
from legacy_nst.vgg import architecture, weights

VGG19_LAYERS = architecture.conv_layers("vgg19")


@functools.lru_cache(maxsize=None)
def synthetic(seed=0):
    return synthetic_weights("vgg19", seed=seed)


def session_config():
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0})
    config.graph_options.rewrite_options.disable_meta_optimizer = True  # seconds per fetch on tiny graphs
    return config


def features_of(params, batch, layers, pooling="max"):
    """{layer: activations (N, h, w, C)} of an RGB batch through VGG19 up to the deepest of `layers`."""
    graph = tf.Graph()
    with graph.as_default():
        vgg = network.VGG("vgg19", params, max(layers, key=VGG19_LAYERS.index), pooling)
        feats = vgg(tf.constant(np.asarray(batch, np.float32)))
        with tf.compat.v1.Session(graph=graph, config=session_config()) as session:
            return session.run({layer: feats[layer] for layer in layers})


def save(array, path, mode=None):
    Image.fromarray(np.asarray(array, np.uint8), mode).save(path)
    return str(path)


# ------------------------------------------------------------------------------------------ load_mask


def test_load_mask_white_paints_black_does_not(tmp_path):
    mask = np.zeros((16, 24), np.uint8)
    mask[:, :12] = 255
    mask[:4, 12:] = 128
    got = images.load_mask(save(mask, tmp_path / "m.png"), (16, 24))
    assert got.dtype == np.float32 and got.shape == (16, 24)
    np.testing.assert_array_equal(got[:, :12], 1.0)
    np.testing.assert_array_equal(got[4:, 12:], 0.0)
    np.testing.assert_allclose(got[:4, 12:], 128 / 255, atol=1e-6)  # measured 3.0e-8 (abs)


def test_load_mask_rgb_counts_by_luminance(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (255, 255, 255)
    rgb[4:] = (255, 0, 0)  # pure red: ITU-R 601 luma 0.299
    got = images.load_mask(save(rgb, tmp_path / "m.png"), (8, 8))
    np.testing.assert_array_equal(got[:4], 1.0)
    np.testing.assert_allclose(got[4:], round(0.299 * 255) / 255, atol=1.5 / 255)  # measured 1.2e-8 (abs)


def test_load_mask_ignores_alpha(tmp_path):
    """White strokes on a transparent canvas (RGBA 0,0,0,0): the stroke paints, the canvas does not. Composited
    on white (what load_image does for a picture) the whole mask would be white."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 2:6] = (255, 255, 255, 255)
    got = images.load_mask(save(rgba, tmp_path / "m.png", "RGBA"), (8, 8))
    expected = np.zeros((8, 8), np.float32)
    expected[2:6, 2:6] = 1.0
    np.testing.assert_array_equal(got, expected)
    assert images.load_image(tmp_path / "m.png").min() == 255  # the picture loader composites on white


def test_load_mask_is_stretched_to_the_content(tmp_path):
    mask = np.zeros((10, 20), np.uint8)
    mask[:, 10:] = 255
    got = images.load_mask(save(mask, tmp_path / "m.png"), (30, 60))
    assert got.shape == (30, 60)
    np.testing.assert_array_equal(got[:, :28], 0.0)
    np.testing.assert_array_equal(got[:, 32:], 1.0)
    assert got.mean() == pytest.approx(0.5, abs=0.01)  # measured 0


def test_load_mask_refuses_another_aspect_ratio(tmp_path):
    path = save(np.full((10, 20), 255), tmp_path / "wide.png")
    with pytest.raises(UserError, match=r"wide\.png: mask is 20x10 but the content is 20x20"):
        images.load_mask(path, (20, 20))
    assert images.load_mask(path, (21, 41)).shape == (21, 41)  # one pixel of rounding is fine


@pytest.mark.parametrize("level", [0, 4])
def test_load_mask_refuses_an_empty_mask(tmp_path, level):
    path = save(np.full((8, 8), level), tmp_path / "black.png")
    with pytest.raises(UserError, match=r"black\.png: mask is black everywhere \(empty\)"):
        images.load_mask(path, (8, 8))


def test_load_mask_bad_files_are_refused_like_images(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    for path in (tmp_path / "missing.png", corrupt, tmp_path):
        with pytest.raises(UserError) as mask_error:
            images.load_mask(str(path), (8, 8))
        with pytest.raises(UserError) as image_error:
            images.load_image(str(path))
        assert str(mask_error.value) == str(image_error.value)


# ------------------------------------------------------------------------------------- guided Grams


def np_masked_gram(f, m, norm):
    flat = (f[0] * m[:, :, None]).reshape(-1, f.shape[-1]).astype(np.float64)
    g = flat.T @ flat
    return {"raw": g, "positions": g / np.sum(m**2), "elements": g / (np.sum(m**2) * f.shape[-1])}[norm]


def run(build, *arrays):
    graph = tf.Graph()
    with graph.as_default():
        out = build(*[tf.constant(np.asarray(a, np.float32)) for a in arrays])
        with tf.compat.v1.Session(graph=graph, config=session_config()) as session:
            return session.run(out)


@pytest.mark.parametrize("norm", recipes.GramNorm)
def test_masked_gram_matches_numpy(norm):
    rng = np.random.default_rng(0)
    f, m = rng.normal(size=(1, 5, 7, 4)) * 10, rng.uniform(0, 1, (5, 7))
    got = run(lambda t: losses.gram(t, norm, mask=m), f)
    np.testing.assert_allclose(got, np_masked_gram(f, m, norm), rtol=1e-5)  # measured 1.1e-6


@pytest.mark.parametrize("norm", recipes.GramNorm)
def test_masked_gram_of_ones_is_the_gram(norm):
    f = np.random.default_rng(1).normal(size=(1, 4, 6, 3))
    got = run(lambda t: (losses.gram(t, norm, mask=np.ones((4, 6))), losses.gram(t, norm)), f)
    np.testing.assert_allclose(got[0], got[1], rtol=1e-6)  # measured 0


def test_masked_gram_positions_is_a_weighted_mean_for_soft_masks():
    """A region of one style seen through a soft mask reads as that style: features repeating the same
    vectors give the same Gram as the plain one for any mask (÷ Σm would shrink it by Σm²/Σm)."""
    rng = np.random.default_rng(2)
    f = np.tile(rng.normal(size=(1, 1, 2, 3)), (1, 6, 2, 1))  # columns alternate between two vectors
    m = np.tile(rng.uniform(0.1, 1, (6, 1)), (1, 4))  # constant along each row: both vectors equally weighted
    got = run(lambda t: (losses.gram(t, "positions", mask=m), losses.gram(t, "positions")), f)
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5)  # measured 2.0e-7


def test_masked_gram_gradient():
    """d Σ W∘G / dF = m ⊙ (F·m)(W + Wᵀ), with G = (F·m)ᵀ(F·m) raw."""
    rng = np.random.default_rng(3)
    f, m, w = rng.normal(size=(1, 3, 5, 4)), rng.uniform(0, 1, (3, 5)), rng.normal(size=(4, 4))

    def build(t):
        return tf.gradients(tf.reduce_sum(losses.gram(t, "raw", mask=m) * w.astype(np.float32)), t)[0]

    fm = (f[0] * m[:, :, None]).reshape(-1, 4)
    expected = (m.reshape(-1, 1) * (fm @ (w + w.T))).reshape(f.shape)
    np.testing.assert_allclose(run(build, f), expected, rtol=1e-4, atol=1e-6)  # measured 1.0e-7 of the scale


# ---------------------------------------------------------------------------------------- layer_masks


def test_layer_masks_have_the_activation_shapes_up_to_block5():
    """Odd sizes on purpose: the pools drop the last row/column, and so must the masks."""
    h, w = 67, 45
    mask = np.random.default_rng(4).uniform(0, 1, (h, w)).astype(np.float32)
    feats = features_of(synthetic(), np.zeros((1, h, w, 3)), VGG19_LAYERS)
    masks = losses.layer_masks(mask, "vgg19", VGG19_LAYERS)
    assert list(masks) == VGG19_LAYERS
    for layer in VGG19_LAYERS:
        assert masks[layer].shape == feats[layer].shape[1:3], layer
        assert masks[layer].dtype == np.float32


@pytest.mark.parametrize("layer", ["block1_conv2", "conv2_1", "relu3_4", "block4_conv1", "block5_conv3"])
def test_simple_masks_are_block_means_of_the_image_mask(layer):
    mask = np.random.default_rng(5).uniform(0, 1, (70, 53)).astype(np.float32)
    name = architecture.canonical_layer("vgg19", layer)
    got = losses.layer_masks(mask, "vgg19", [layer])[name]
    factor = 2 ** (int(name[5]) - 1)
    h, w = got.shape
    # measured 1.4e-7
    np.testing.assert_allclose(got, block_reduce(mask[: h * factor, : w * factor], (factor, factor), np.mean),
                               rtol=1e-5)


def test_inside_masks_are_the_positions_blind_to_the_outside():
    """The authors' probe: change only the pixels outside the region; the positions whose activations do not
    change are exactly the "inside" mask. Region: a rectangle in the top right corner."""
    h, w = 40, 48
    mask = np.zeros((h, w), np.float32)
    mask[:34, 9:] = 1.0  # touches the top and right borders: zero padding is no outside pixel
    layers = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1"]
    rng = np.random.default_rng(6)
    base = rng.uniform(0, 255, (h, w, 3))
    probe = np.where(mask[..., None] > 0, base, rng.uniform(0, 255, (h, w, 3)))
    feats = features_of(synthetic(), np.stack([base, probe]), layers)
    masks = losses.layer_masks(mask, "vgg19", layers, mode="inside")
    for layer in layers:
        unchanged = (np.abs(feats[layer][0] - feats[layer][1]).max(axis=-1) == 0).astype(np.float32)
        np.testing.assert_array_equal(masks[layer], unchanged, err_msg=layer)
        assert 0 < masks[layer].sum() < masks[layer].size


def test_inside_mode_refuses_a_region_eroded_away():
    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 10:20] = 1.0
    with pytest.raises(UserError, match="no position inside the region at block3_conv1 .*mask mode simple"):
        losses.layer_masks(mask, "vgg19", ["block1_conv1", "block3_conv1"], mode="inside")


def test_unknown_mask_mode_and_layer_are_user_errors():
    with pytest.raises(UserError, match="unknown mask mode 'blur'"):
        losses.layer_masks(np.ones((8, 8)), "vgg19", ["block1_conv1"], mode="blur")
    with pytest.raises(UserError, match="unknown vgg19 layer"):
        losses.layer_masks(np.ones((8, 8)), "vgg19", ["block9_conv1"])


# --------------------------------------------------------------------------------- guided Grams at work


def stripes(side, horizontal):
    """Dark blue / light yellow stripes 4 pixels wide; the two styles differ only in orientation."""
    coord = np.arange(side)[:, None] if horizontal else np.arange(side)[None, :]
    on = ((coord // 4) % 2 == 0)
    image = np.where(on[..., None], np.array([230, 210, 80.0]), np.array([30, 40, 120.0]))
    return np.broadcast_to(image, (side, side, 3))


@pytest.mark.parametrize("mode", recipes.MASK_MODES)
def test_guided_grams_separate_two_styles(real_weights, mode):
    """Left half horizontal stripes (style A), right half vertical (style B): the left-masked Grams match
    A's own Grams and the right-masked ones B's, far better than the swapped assignment. Measured relative
    errors (left, right), simple: own 0.04/0.05, 0.09/0.08, 0.20/0.19 at block1..3_conv1 against swapped
    1.01/0.97, 1.08/1.09, 1.15/1.29; inside: own 0.01/0.07, 0.05/0.07, 0.17/0.14 (what is left is the
    seam's and the border's reach through the receptive fields, growing with depth)."""
    side = 64
    a, b = stripes(side, True), stripes(side, False)
    both = np.concatenate([a[:, : side // 2], b[:, side // 2:]], axis=1)
    left = np.zeros((side, side), np.float32)
    left[:, : side // 2] = 1.0
    layers = ["block1_conv1", "block2_conv1", "block3_conv1"]
    params = weights.load_weights(real_weights, "vgg19", layers)
    feats = features_of(params, np.stack([a, b, both]), layers)
    masks = {name: losses.layer_masks(m, "vgg19", layers, mode=mode) for name, m in (("left", left), ("right", 1 - left))}
    for layer in layers:
        fa, fb, fx = (feats[layer][i: i + 1] for i in range(3))
        everywhere = np.ones(fa.shape[1:3])
        ga, gb = np_masked_gram(fa, everywhere, "positions"), np_masked_gram(fb, everywhere, "positions")
        g_left = run(lambda t: losses.gram(t, "positions", mask=masks["left"][layer]), fx)
        g_right = run(lambda t: losses.gram(t, "positions", mask=masks["right"][layer]), fx)

        def err(g, target):
            return np.linalg.norm(g - target) / np.linalg.norm(target)

        own, swapped = (err(g_left, ga), err(g_right, gb)), (err(g_left, gb), err(g_right, ga))
        assert max(own) < 0.25 * min(swapped), (layer, own, swapped)
