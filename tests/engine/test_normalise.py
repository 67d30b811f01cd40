"""The paper's unit-mean normalisation on the genuine VGG19 blocks 1-3, measured independently of the code
under test: features are read through network.FeatureProbe and averaged with numpy.

Tolerances: the figure beside each is the largest error measured on the AVX2 AMD EPYC with both convolution
paths (plain / transposed; one figure where they agree), relative unless it says "of the scale" (max |Δ| ÷
the largest value); every one passed unchanged on the AVX-512 Xeon of earlier rounds."""
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw

from legacy_nst import images, recipes
from legacy_nst.engine import network
from legacy_nst.engine import terms as losses
from legacy_nst.errors import UserError
from legacy_nst.runner import normalisation as normalise
from legacy_nst.vgg import architecture, weights

SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"
LAYERS = architecture.conv_layers("vgg19")[:8]  # block1_conv1 .. block3_conv4: all the partial file holds
SIDE = 128


@pytest.fixture(scope="module")
def genuine(real_weights):
    return weights.load_weights(real_weights, "vgg19", LAYERS)


@pytest.fixture(scope="module")
def shared_images():
    files = normalise.image_files(SHARED_IMAGES)
    assert len(files) >= 5, files
    return files, list(normalise.sized_images(files, SIDE))


def pooled_means(params, pooling, rgbs):
    """Oracle: every activation of every image concatenated, then np.mean per channel."""
    with network.FeatureProbe("vgg19", params, LAYERS, pooling) as probe:
        maps = [probe(rgb) for rgb in rgbs]
    return {layer: np.concatenate([m[layer].reshape(-1, m[layer].shape[-1]) for m in maps]).mean(0, dtype=np.float64)
            for layer in LAYERS}


def test_every_live_filter_has_unit_mean_and_features_only_rescale(genuine, weights_link, shared_images):
    files, rgbs = shared_images
    original = pooled_means(genuine, "max", rgbs)
    params = normalise.normalised_weights(genuine, "vgg19", "max", SHARED_IMAGES, weights_link, size=SIDE)
    after = pooled_means(params, "max", rgbs)
    for layer in LAYERS:
        live = original[layer] > 0
        assert live.sum() > 0.9 * live.size, layer
        # measured 2.3e-7 plain / 4.5e-7 transposed
        np.testing.assert_allclose(after[layer][live], 1.0, rtol=1e-3, err_msg=layer)
    # The network's output changes only by the per-channel scale: normalised × m == original, every layer.
    with network.FeatureProbe("vgg19", genuine, LAYERS, "max") as probe:
        before_maps = probe(rgbs[0])
    with network.FeatureProbe("vgg19", params, LAYERS, "max") as probe:
        after_maps = probe(rgbs[0])
    for layer in LAYERS:
        scale = np.where(original[layer] > 0, original[layer], 1.0)
        # measured 1.2e-6 plain / 6.5e-7 transposed of the scale
        np.testing.assert_allclose(after_maps[layer] * scale, before_maps[layer], rtol=1e-3,
                                   atol=1e-4 * before_maps[layer].max(), err_msg=layer)


def test_mean_activations_matches_numpy_means(genuine, shared_images):
    _, rgbs = shared_images
    got = normalise.mean_activations(genuine, "vgg19", "avg", rgbs[:3], LAYERS)
    want = pooled_means(genuine, "avg", rgbs[:3])
    for layer in LAYERS:
        np.testing.assert_allclose(got[layer], want[layer], rtol=1e-5, err_msg=layer)  # measured 0


def _evaluate(fetches_of, *arrays):
    graph = tf.Graph()
    with graph.as_default():
        holders = [tf.compat.v1.placeholder(tf.float32, a.shape) for a in arrays]
        fetches = fetches_of(*holders)
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(fetches, dict(zip(holders, arrays)))


def test_loss_terms_scale_as_the_per_channel_means(genuine, shared_images):
    """The paper's loss terms in the rescaled network: raw Gram G'_ij = G_ij / (m_i m_j); with a uniform
    scale s on every filter of every layer, the ½Σ(F − P)² content term at block3_conv2 scales by 1/s²."""
    _, rgbs = shared_images
    layer = "block2_conv1"
    means = pooled_means(genuine, "max", rgbs)
    normalised = normalise.rescaled(genuine, "vgg19", means)
    with network.FeatureProbe("vgg19", genuine, [layer], "max") as probe:
        before = probe(rgbs[0])[layer][None]
    with network.FeatureProbe("vgg19", normalised, [layer], "max") as probe:
        after = probe(rgbs[0])[layer][None]
    g_before, g_after = (_evaluate(lambda f: losses.gram(f, "raw"), f) for f in (before, after))
    # measured 4.2e-7 plain / 3.8e-7 transposed of the scale
    np.testing.assert_allclose(g_after * np.outer(means[layer], means[layer]), g_before, rtol=2e-3,
                               atol=1e-6 * np.abs(g_before).max())

    s = 7.0
    uniform = normalise.rescaled(genuine, "vgg19", {name: np.full(genuine[name][1].shape, s) for name in LAYERS})
    content, result = rgbs[0], images.resize(rgbs[1], rgbs[0].shape[:2], "lanczos")
    terms = []
    for params in (genuine, uniform):
        with network.FeatureProbe("vgg19", params, ["block3_conv2"], "max") as probe:
            f, p = (probe(x)["block3_conv2"] for x in (result, content))
        term = losses.ContentTerm(("block3_conv2",), (1.0,), recipes.ContentForm.HALF_SUM)
        terms.append(_evaluate(lambda a, b: term.score(term.position_sums({"block3_conv2": a}, {"block3_conv2": b}),
                                                       term.coefficients({"block3_conv2": a.shape.as_list()})), f, p))
    assert terms[0] > 0
    np.testing.assert_allclose(terms[1] * s**2, terms[0], rtol=1e-4)  # measured 6.3e-8


def test_dead_filter_keeps_scale_one(genuine, shared_images):
    """A filter that never fires (zero kernel, negative bias) has mean 0: it and the next layer's matching
    input channel are left as they were, and every other filter still reaches mean 1."""
    _, rgbs = shared_images
    params = dict(genuine)
    kernel, bias = (a.copy() for a in genuine["block1_conv1"])
    kernel[..., 5], bias[5] = 0.0, -1.0
    params["block1_conv1"] = (kernel, bias)
    means = normalise.mean_activations(params, "vgg19", "max", rgbs[:2], LAYERS)
    assert means["block1_conv1"][5] == 0
    out = normalise.rescaled(params, "vgg19", means)
    np.testing.assert_array_equal(out["block1_conv1"][0][..., 5], kernel[..., 5])
    assert out["block1_conv1"][1][5] == -1.0
    # measured 5.7e-8 plain / 5.6e-8 transposed
    np.testing.assert_allclose(out["block1_conv2"][0][:, :, 5, :] * means["block1_conv2"],
                               params["block1_conv2"][0][:, :, 5, :], rtol=1e-5)
    after = pooled_means(out, "max", rgbs[:2])
    assert after["block1_conv1"][5] == 0
    # measured 1.0e-7 plain / 8.6e-8 transposed
    np.testing.assert_allclose(np.delete(after["block1_conv1"], 5), 1.0, rtol=1e-3)
    np.testing.assert_allclose(after["block3_conv1"], 1.0, rtol=1e-3)  # measured 1.2e-6 plain / 2.2e-7 transposed


def _small_images(directory, count=2):
    directory.mkdir()
    for path in sorted(SHARED_IMAGES.glob("*.jpg"))[:count]:
        with Image.open(path) as img:
            img.convert("RGB").resize((48, 36)).save(directory / f"{path.stem}.png")
    (directory / "notes.txt").write_text("not an image: skipped")
    return directory


def test_cache_is_reused_and_invalidated(genuine, weights_link, tmp_path, monkeypatch):
    image_dir = _small_images(tmp_path / "imgs")
    calls = []
    measure = normalise.mean_activations
    monkeypatch.setattr(normalise, "mean_activations", lambda *a, **k: calls.append(1) or measure(*a, **k))

    def run(**kw):
        return normalise.normalised_weights(genuine, "vgg19", "max", image_dir, weights_link, size=32, **kw)

    first = run()
    caches = sorted(weights_link.parent.glob(f"{weights_link.name}.norm-*.npz"))
    assert len(calls) == 1 and len(caches) == 1
    second = run()
    assert len(calls) == 1  # read back, not measured
    for layer in LAYERS:
        np.testing.assert_array_equal(first[layer][0], second[layer][0])

    # An image edited in place: a new fingerprint, measured again, different scales.
    victim = sorted(image_dir.glob("*.png"))[0]
    with Image.open(victim) as img:
        img = img.copy()
    ImageDraw.Draw(img).rectangle([0, 0, 30, 30], fill=(255, 255, 255))
    img.save(victim)
    third = run()
    assert len(calls) == 2
    assert len(list(weights_link.parent.glob("*.norm-*.npz"))) == 2
    assert not np.allclose(third["block3_conv1"][1], first["block3_conv1"][1])

    # Pooling and size are part of the fingerprint; a corrupt cache is measured again, not trusted.
    files = normalise.image_files(image_dir)
    keys = {normalise.fingerprint(weights_link, "vgg19", pooling, files, size)
            for pooling in ("max", "avg") for size in (32, None)}
    assert len(keys) == 4
    path = normalise.cache_path(weights_link, normalise.fingerprint(weights_link, "vgg19", "max", files, 32))
    path.write_bytes(b"garbage")
    run()
    assert len(calls) == 3
    run()
    assert len(calls) == 3


def test_unwritable_cache_warns_and_still_normalises(genuine, weights_link, tmp_path):
    image_dir = _small_images(tmp_path / "imgs", count=1)
    files = normalise.image_files(image_dir)
    path = normalise.cache_path(weights_link, normalise.fingerprint(weights_link, "vgg19", "avg", files, 32))
    path.mkdir()  # the rename onto it fails as in a read-only folder (root ignores directory permissions)
    with pytest.warns(UserWarning, match="cannot cache"):
        params = normalise.normalised_weights(genuine, "vgg19", "avg", image_dir, weights_link, size=32)
    after = pooled_means(params, "avg", list(normalise.sized_images(files, 32)))
    # measured 1.9e-7 plain / 2.2e-7 transposed
    np.testing.assert_allclose(after["block2_conv2"][after["block2_conv2"] > 0], 1.0, rtol=1e-3)


def test_image_set_errors_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: no image files"):
        normalise.image_files(tmp_path / "empty")
    with pytest.raises(UserError, match="missing: no such file"):
        normalise.image_files([tmp_path / "missing"])


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "infinities", "all zero"])
def test_a_bad_cache_is_named_discarded_and_measured_again(damage, genuine, weights_link, tmp_path, monkeypatch):
    """Issue 20.12: BadZipFile, ValueError and a run blaming the learning rate, before."""
    image_dir = _small_images(tmp_path / "imgs", count=1)
    calls = []
    measure = normalise.mean_activations
    monkeypatch.setattr(normalise, "mean_activations", lambda *a, **k: calls.append(1) or measure(*a, **k))

    def run():
        return normalise.normalised_weights(genuine, "vgg19", "max", image_dir, weights_link, size=32)

    good = run()
    path = normalise.cache_path(weights_link, normalise.fingerprint(
        weights_link, "vgg19", "max", normalise.image_files(image_dir), 32))
    with np.load(path) as cache:
        means = {k: cache[k] for k in cache.files}
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        means["mean/block2_conv1"] = {"wrong shape": np.ones(5), "infinities": np.full(128, np.inf),
                                      "all zero": np.zeros(128)}[damage]  # all zero: used silently, before
        np.savez(path, **means)
    reason = {"truncated": "unreadable", "wrong shape": "block2_conv1 have shape (5,)",
              "infinities": "block2_conv1 are not finite", "all zero": "block2_conv1 are all 0"}[damage]
    named = f"{re.escape(path.name)}: a bad normalisation cache \\(.*{re.escape(reason)}.*measuring"
    with pytest.warns(UserWarning, match=named):
        again = run()
    assert len(calls) == 2
    for layer in LAYERS:
        np.testing.assert_array_equal(again[layer][0], good[layer][0])
    run()  # the cache written again is good: read back
    assert len(calls) == 2


def test_the_command_line_names_a_bad_cache_in_one_line(weights_link, tmp_path, capsys):
    """Issue 20.12: the discarded cache was reported as a two-line Python UserWarning (file:line, source)."""
    from legacy_nst.ui import cli

    image_dir = _small_images(tmp_path / "imgs", count=2)
    path = normalise.cache_path(weights_link, normalise.fingerprint(
        weights_link, "vgg19", "max", normalise.image_files(image_dir), normalise.DEFAULT_SIZE))
    path.write_bytes(b"PK\x03\x04 not a whole zip")
    content, style = sorted(image_dir.glob("*.png"))
    code = cli.main(["--content", str(content), "--style", str(style), "--recipe", "preview", "--size", "24", "--iterations", "1",
                     "--weights", str(weights_link), "--normalise-on", str(image_dir),
                     "--output", str(tmp_path / "out.png"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    said = [line for line in err.splitlines() if "normalisation cache" in line]
    assert said == [f"legacy-nst: warning: {path}: a bad normalisation cache (unreadable (BadZipFile)); "
                    "discarded, measuring the means again"], err
