"""The seed transcriptions (seed_code.py) checked against facts that do not come from them.

Each quirk is pinned by a number worked out by hand from the seed's lines (a closed form, a known value,
Python's own float arithmetic), not by re-running the transcription's code. These are not engine
comparisons. Shallow layers (blocks 1-3) and synthetic weights at 24 × 32 keep the file fast.

Tolerances: the figure beside each is what was measured on the AVX2 AMD EPYC (float64 numpy only, no
TensorFlow, so no convolution path); every one passed unchanged on the AVX-512 Xeon of earlier rounds. The
absolute ones on means of rounding differences (0.02, 0.05, 0.03) are sampling spread over a fixed random
draw, not float error; the 1e-9 and 1e-12 ones are float64 rounding.
"""
import functools

import numpy as np
import pytest
import seed_code as sc
from numpy_vgg import NumpyVGG, caffe_deprocess, caffe_preprocess, single_threaded_blas
from support import synthetic_weights

SHALLOW_STYLE = ("block1_conv1", "block2_conv1", "block3_conv1")


@functools.lru_cache(maxsize=None)
def _net(network):
    return NumpyVGG(network, synthetic_weights(network, seed=3), "max")


def _images(seed=7, shape=(24, 32)):
    """Smooth random content, style and start images, RGB 0..255 floats."""
    rng = np.random.default_rng(seed)

    def smooth():
        base = rng.uniform(0, 255, (shape[0] // 4 + 2, shape[1] // 4 + 2, 3))
        up = np.kron(base, np.ones((4, 4, 1)))[: shape[0], : shape[1]]
        return np.clip(up + rng.normal(0, 20, shape + (3,)), 0, 255)

    return smooth(), smooth(), smooth()


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with single_threaded_blas():
        yield


# ----------------------------------------------------------------------------------------------------------
# Conversions to uint8
# ----------------------------------------------------------------------------------------------------------
def test_keras_deprocess_adds_bgr_means_flips_clips_and_truncates():
    """x[:, :, 0] += 103.939 (B), [1] += 116.779 (G), [2] += 123.68 (R); flip to RGB; clip; astype('uint8')."""
    x = np.array([[[-103.939 + 10.9, 0.0, 131.32 + 0.5]]])  # B 10.9, G 116.779, R 255.5
    assert sc.keras_deprocess(x).tolist() == [[[255, 116, 10]]]
    assert sc.keras_deprocess(x, "round").tolist() == [[[255, 117, 11]]]
    assert sc.keras_deprocess(np.full((1, 1, 3), -500.0)).tolist() == [[[0, 0, 0]]]


def test_truncation_and_rounding_differ_by_half_a_level_on_average():
    values = np.random.default_rng(0).uniform(0, 255, 20000)
    diff = sc.to_uint8(values, "round").astype(int) - sc.to_uint8(values, "truncate").astype(int)
    assert set(np.unique(diff)) == {0, 1}
    # measured 0.5028
    assert diff.mean() == pytest.approx(0.5, abs=0.02)  # the fractional part is ≥ 0.5 half the time


# ----------------------------------------------------------------------------------------------------------
# Seed 000: Adam, best image and grid after the update, float display interval
# ----------------------------------------------------------------------------------------------------------
def test_seed000_display_interval_is_a_float_division():
    """`i % display_interval == 0` with display_interval = num_iterations / 10, Python floats."""
    assert sc.display_iterations(1000) == list(range(0, 1000, 100))
    assert sc.display_iterations(20) == list(range(0, 20, 2))
    assert sc.display_iterations(15) == [0, 3, 6, 9, 12]  # 1.5: five images, not ten
    assert sc.display_iterations(1001) == [0]  # 100.1: only the first
    assert sc.display_iterations(7) == [0]


def _seed000(content, style, **kw):
    return sc.run_seed000(_net("vgg19"), content, style, content_layers=("block3_conv2",),
                          style_layers=SHALLOW_STYLE, **kw)


def test_seed000_kept_and_shown_images_are_after_the_first_adam_step():
    """TF1 Adam's first step in closed form: m = (1−β1)g, v = (1−β2)g², lr_t = lr·√(1−β2)/(1−β1), so
    x1 = x0 − lr · g / (|g| + ε/√(1−β2)). With one iteration the best (only) loss is step 0's and the kept
    image is x1; with two the grid shows i = 0 only (display_interval 0.2), also x1."""
    content, style, _ = _images()
    lr, eps, beta2 = 5.0, 1e-1, 0.999
    f = sc.seed000_loss(_net("vgg19"), content, style, content_layers=("block3_conv2",), style_layers=SHALLOW_STYLE)
    ref = f(content)
    g = ref.grad[..., ::-1]  # the gradient with respect to the preprocessed image
    x1 = caffe_deprocess(caffe_preprocess(content) - lr * g / (np.abs(g) + eps / np.sqrt(1 - beta2)))

    one = _seed000(content, style, num_iterations=1)
    assert one.best == 0 and one.losses[0]["total"] == pytest.approx(ref.total, rel=1e-12)  # measured 0
    np.testing.assert_allclose(one.image, x1, atol=1e-9)  # measured 2.8e-14
    assert np.array_equal(one.result, sc.to_uint8(one.image)) and np.abs(one.image - content).max() > 1

    two = _seed000(content, style, num_iterations=2)
    assert [i for i, _ in two.shown] == [0]
    assert np.array_equal(two.shown[0][1], one.result)
    # printed: the total and the WEIGHTED style and content scores (style_score *= style_weight)
    i, loss, style_score, content_score = two.printed[0]
    assert (i, loss) == (0, pytest.approx(ref.total, rel=1e-12))  # measured 0
    # measured 0
    assert style_score == pytest.approx(1e-2 * ref.terms["style"]) and content_score == 0.0  # x0 = content
    # the corrected behaviour keeps and shows the image the loss was measured on: the content itself
    kept = _seed000(content, style, num_iterations=1, best_image_after_update=False)
    np.testing.assert_allclose(kept.image, content, atol=1e-9)  # measured 7.1e-15
    grid = _seed000(content, style, num_iterations=2, grid_after_update=False)
    assert np.array_equal(grid.shown[0][1], sc.keras_deprocess(caffe_preprocess(content)))


# ----------------------------------------------------------------------------------------------------------
# Seed 002: adj factors one run old, result after the last update
# ----------------------------------------------------------------------------------------------------------
def _seed002(content, style, x0, **kw):
    return sc.run_seed002(_net("vgg16"), content, style, x0=x0, s_layer_ids=range(7), **kw)


@functools.lru_cache(maxsize=None)
def _seed002_pieces():
    content, style, x0 = _images()
    x0 = 128 + (x0 - 128) * 0.2  # a start near the seed's (rand + 128), still with structure
    f = sc.seed002_loss(_net("vgg16"), content, style, s_layer_ids=range(7))
    return content, style, x0, f


def test_seed002_step0_is_the_plain_weighted_sum_with_epsilon_100():
    """Step 0 sees adj = 1e-10 (the variables' initial value) for all three terms, so the gradient is
    1e-10 · ∇(2·L_c + 9·L_s + 0.4·L_d) and std + 1e-8 becomes 1e-10 · (std + 100): the first step is
    x − 10 · g / (std(g) + 100) for the plain weighted sum g, then the clip."""
    content, style, x0, f = _seed002_pieces()
    g = f(x0, adj=(1.0, 1.0, 1.0)).grad
    expected = np.clip(x0 - 10 * g / (np.std(g) + 100), 0, 255)
    run = _seed002(content, style, x0, iters=1)
    assert run.losses[0]["adjust"] == (1e-10, 1e-10, 1e-10)
    np.testing.assert_allclose(run.image, expected, atol=1e-9)  # measured 2.8e-14
    # the recipe today (current factors from step 0) makes a different first step
    current = _seed002(content, style, x0, iters=1, adaptive_weights_lag=False)
    assert np.abs(current.image - run.image).max() > 0.5


def test_seed002_step1_sees_the_factors_of_step0():
    content, style, x0, f = _seed002_pieces()
    terms0 = f(x0).terms
    adj0 = tuple(1 / (terms0[k] + 1e-10) for k in ("content", "style", "tv"))
    x1 = _seed002(content, style, x0, iters=1).image
    g1 = f(x1, adj=adj0).grad
    expected = np.clip(x1 - 10 * g1 / (np.std(g1) + 1e-8), 0, 255)
    run = _seed002(content, style, x0, iters=2)
    assert run.losses[1]["adjust"] == pytest.approx(adj0, rel=1e-12)  # measured 0
    np.testing.assert_allclose(run.image, expected, atol=1e-9)  # measured 2.8e-14


def test_seed002_shows_every_10th_image_after_its_update_and_returns_the_last_update():
    content, style, x0, _ = _seed002_pieces()
    run = _seed002(content, style, x0, iters=12)
    assert [i for i, _ in run.shown] == [0, 10] and run.printed == [(i,) for i in range(12)]
    eleven = _seed002(content, style, x0, iters=11)
    assert np.array_equal(run.shown[1][1], eleven.result)  # plot_image at i = 10 shows x after 11 updates
    np.testing.assert_array_equal(eleven.image, _seed002(content, style, x0, iters=12,
                                                         result_after_last_update=False).image)


# ----------------------------------------------------------------------------------------------------------
# Seed 003: outer restarts, weights of the article's code
# ----------------------------------------------------------------------------------------------------------
def test_seed003_restarts_and_saved_images():
    content, style, _ = _images()
    run = sc.run_seed003(_net("vgg19"), content, style, iterations=3, maxfun=4, content_layer="block3_conv2",
                         feature_layers=SHALLOW_STYLE)
    assert [i for i, _ in run.printed] == [0, 1, 2] == [i for i, _ in run.shown]
    firsts = [next(l for l in run.losses if l["iteration"] == i) for i in range(3)]
    # every restart starts by evaluating the image the previous one returned (its printed min_val)
    for i in (1, 2):
        assert firsts[i]["total"] == pytest.approx(run.printed[i - 1][1], rel=1e-12)  # measured 0
    # scipy checks `nfev > maxfun` only after an accepted step: a restart makes at least maxfun + 1
    # evaluations (5 here; the seed's maxfun=15 makes 16)
    counts = [sum(l["iteration"] == i for l in run.losses) for i in range(3)]
    assert min(counts) > 4
    assert np.array_equal(run.result, run.shown[-1][1])
    assert np.array_equal(run.result, np.clip(run.image, 0, 255).astype(np.uint8))


def test_seed003_style_sum_is_multiplied_by_style_weight_twice():
    """total_style_loss adds (style_weight / 5) · per-layer; total_loss multiplies the sum by style_weight
    again: with the article's 5 / 2 / 1 the style counts 2² = 4 times its per-layer mean."""
    content, style, x = _images()
    ref = sc.seed003_loss(_net("vgg19"), content, style, content_layer="block3_conv2",
                          feature_layers=SHALLOW_STYLE)(x)
    # measured 0
    assert ref.total == pytest.approx(5 * ref.terms["content"] + 4 * ref.terms["style"] + ref.terms["tv"], rel=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Seed 004: RMS-normalised steps, the 422 × 750 literal, the channel slip, the last update
# ----------------------------------------------------------------------------------------------------------
def _seed004(content, style, **kw):
    return sc.run_seed004(_net("vgg19"), content, style, style_layers=("block3_conv1", "block2_conv1"), **kw)


def test_seed004_style_norm_uses_the_literal_422_by_750():
    content, style, x = _images()
    kw = dict(style_layers=("block3_conv1", "block2_conv1"))
    literal = sc.seed004_loss(_net("vgg19"), content, style, **kw)(x)
    own = sc.seed004_loss(_net("vgg19"), content, style, norm_size=None, **kw)(x)
    assert literal.terms["content"] == own.terms["content"]
    # measured 0
    assert literal.terms["style"] / own.terms["style"] == pytest.approx((24 * 32 / (422 * 750)) ** 2, rel=1e-12)


def test_seed004_each_step_moves_the_image_by_0_01_rms():
    content, style, x0 = _images()
    run = _seed004(content, style, x0=x0, iterations=1)
    step = run.image - x0
    # measured 7.4e-9
    assert np.sqrt(np.mean(step ** 2)) == pytest.approx(0.01, rel=1e-6)  # step · rms / (rms + 1e-5)


def test_seed004_prints_every_100th_loss_and_returns_the_last_update():
    content, style, _ = _images()
    run = _seed004(content, style, iterations=101)
    assert [i for i, _ in run.printed] == [0, 100]
    assert run.printed[1][1] == run.losses[100]["total"]  # the loss of the image before update 100
    short = _seed004(content, style, iterations=2)
    np.testing.assert_array_equal(short.image, _seed004(content, style, iterations=3,
                                                        result_after_last_update=False).image)
    # the image drifts from noise to the mean grey: continuous levels, so truncation costs half a level
    x = caffe_preprocess(run.image)
    diff = (sc.seed004_save(x, save_cast="round").astype(int) - sc.seed004_save(x).astype(int))
    assert set(np.unique(diff)) <= {0, 1} and diff.mean() == pytest.approx(0.5, abs=0.05)  # measured 0.510


def test_seed004_channel_slip_is_r_minus_and_b_plus_19_741():
    """deprocess_image flips BGR→RGB first, then adds 103.939 to channel 0 (now R, whose mean is 123.68)
    and 123.68 to channel 2 (now B): R − 19.741, B + 19.741, G unchanged."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-70, 70, (64, 64, 3))  # preprocessed BGR, correct RGB well inside 0..255 ± 20
    slip = sc.seed004_save(x).astype(float)
    right = sc.seed004_save(x, deprocess_channel_slip=False).astype(float)
    shift = slip - right
    assert set(np.unique(shift[..., 0])) <= {-20, -19} and set(np.unique(shift[..., 2])) <= {19, 20}
    assert (shift[..., 1] == 0).all()
    assert shift[..., 0].mean() == pytest.approx(-19.741, abs=0.03)  # measured -19.7507
    assert shift[..., 2].mean() == pytest.approx(19.741, abs=0.03)  # measured 19.7461
