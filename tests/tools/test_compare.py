"""compare.score on the genuine VGG19 blocks 1-3: zeros where they must be, worse for worse images, known
colour values, and any image at all, including one this project never produced.

Tolerances: the figures beside them were measured on the AVX2 AMD EPYC with both convolution paths (plain /
transposed; one figure where they agree); every one passed unchanged on the AVX-512 Xeon of earlier rounds."""
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFilter

from legacy_nst import images
from legacy_nst.engine import network
from legacy_nst.engine import terms as losses
from legacy_nst.errors import UserError
from legacy_nst.tools import compare
from legacy_nst.vgg import architecture, weights

SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"
SIDE = 64


@pytest.fixture(scope="module")
def params(real_weights):
    return weights.load_weights(real_weights, "vgg19", weights.present_conv_layers(real_weights, "vgg19"))


def small(name, side=SIDE):
    rgb = images.load_image(str(SHARED_IMAGES / name))
    return images.resize(rgb, images.target_shape(rgb.shape, side, "long-side"), "lanczos")


@pytest.fixture(scope="module")
def content():
    return small("tubingen.jpg")


@pytest.fixture(scope="module")
def style():
    return small("starry_night.jpg")


def all_distances(section):
    return [d["mse"] for d in section["content"].values()] + [d["squared"] for d in section["style"].values()]


def test_partial_weights_choose_blocks_1_to_3(real_weights, params, vgg19_h5):
    assert weights.present_conv_layers(real_weights, "vgg19") == architecture.conv_layers("vgg19")[:8]
    assert compare.default_layers(params) == compare.SHALLOW_LAYERS
    full = weights.load_weights(vgg19_h5, "vgg19", weights.present_conv_layers(vgg19_h5, "vgg19"))
    assert len(full) == 16 and compare.default_layers(full) == compare.PAPER_LAYERS


def test_self_comparison_is_perfect(params, content):
    m = compare.score(content, content, content, reference=content, params=params, size=SIDE)
    assert m["layers"] == {"content": ["block3_conv2"], "style": ["block1_conv1", "block2_conv1", "block3_conv1"]}
    assert m["reference"]["ssim"] == pytest.approx(1.0, abs=1e-12)  # measured 0
    assert m["reference"]["psnr"] == float("inf")
    assert all_distances(m) == [0.0] * 4 and all_distances(m["reference"]) == [0.0] * 4
    assert m["colour"]["result_vs_content"] == {"mean_abs_dL": 0.0, "mean_abs_da": 0.0, "mean_abs_db": 0.0}


def test_content_and_style_score_zero_on_their_own_term(params, content, style):
    as_content = compare.score(content, content, style, params=params, size=SIDE)
    as_style = compare.score(style, content, style, params=params, size=SIDE)
    assert [d["mse"] for d in as_content["content"].values()] == [0.0]
    assert min(d["relative"] for d in as_content["style"].values()) > 1e-3
    assert [d["squared"] for d in as_style["style"].values()] == [0.0] * 3
    assert as_style["content"]["block3_conv2"]["relative"] > 0.1
    # Two styles blended 1:0 are the first style alone.
    blended = compare.score(style, content, [style, content], style_weights=[1, 0], params=params, size=SIDE)
    assert [d["squared"] for d in blended["style"].values()] == [0.0] * 3


def blurred(rgb, radius):
    pil = Image.fromarray(images.to_uint8(rgb)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(pil, np.float32)


def test_more_blur_scores_worse(params, content, style):
    scores = [compare.score(r, content, style, reference=content, params=params, size=SIDE)
              for r in (content, blurred(content, 1), blurred(content, 3))]
    ssim = [s["reference"]["ssim"] for s in scores]
    psnr = [s["reference"]["psnr"] for s in scores]
    distance = [s["content"]["block3_conv2"]["relative"] for s in scores]
    assert ssim[0] > ssim[1] > ssim[2]
    assert psnr[0] > psnr[1] > psnr[2] > 10
    assert distance[0] == 0 < distance[1] < distance[2]


def test_style_distance_matches_the_loss_graphs_gram(params, content, style):
    """Oracle: losses.gram(..., "elements") in a TF graph, on activations read through FeatureProbe."""
    m = compare.score(content, content, style, params=params, size=SIDE)
    layer = "block2_conv1"
    with network.FeatureProbe("vgg19", params, [layer]) as probe:
        f_result, f_style = probe(content)[layer], probe(style)[layer]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        g_result, g_style = session.run([losses.gram(tf.constant(f[None]), "elements") for f in (f_result, f_style)])
    squared = np.square(g_result.astype(np.float64) - g_style).sum()
    # measured 3.0e-10 plain / 6.1e-9 transposed
    assert m["style"][layer]["squared"] == pytest.approx(squared, rel=1e-4)
    # measured 3.0e-9 plain / 7.7e-10 transposed
    assert m["style"][layer]["relative"] == pytest.approx(squared / np.square(g_style.astype(np.float64)).sum(),
                                                          rel=1e-4)


def test_colour_stats_of_pure_red_match_known_lab():
    """sRGB (255, 0, 0) is L* 53.24, a* 80.09, b* 67.20 under D65 (Bruce Lindbloom's calculator)."""
    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 255
    stats = compare.colour_stats(red)
    np.testing.assert_allclose(stats["rgb"]["mean"], [255, 0, 0])
    # measured 2.7e-3: the reference's two decimals
    np.testing.assert_allclose(stats["lab"]["mean"], [53.24, 80.09, 67.20], atol=0.01)
    # measured 6.1e-5: float32 rounding of a constant image's Lab
    np.testing.assert_allclose(stats["lab"]["std"], 0, atol=1e-4)


def test_foreign_png_scores_and_writes_the_report(params, tmp_path):
    """A palette PNG with transparency at an odd size, content and style as files of other sizes."""
    drawing = Image.new("RGBA", (53, 37), (0, 0, 0, 0))
    pen = ImageDraw.Draw(drawing)
    pen.ellipse([5, 3, 40, 30], fill=(220, 40, 90, 255))
    pen.line([(0, 36), (52, 0)], fill=(20, 200, 240, 180), width=4)
    foreign = tmp_path / "foreign.png"
    drawing.convert("P", palette=Image.Palette.ADAPTIVE).save(foreign, transparency=0)
    content_file, style_file = SHARED_IMAGES / "tubingen.jpg", SHARED_IMAGES / "seated-nude.jpg"
    m = compare.score(foreign, content_file, [style_file], reference=content_file, params=params, size=48)
    assert m["sizes"]["working"] == [34, 48] and m["sizes"]["result"] == [37, 53]
    assert all(np.isfinite(all_distances(m) + all_distances(m["reference"])))
    assert 0 < m["reference"]["ssim"] < 0.5
    sheet = compare.comparison_sheet(content_file, style_file, foreign, reference=content_file, tile_height=96)
    out = compare.write_comparison(tmp_path / "report", m, sheet)
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "metrics.json", "metrics.md"]
    assert json.loads((out / "metrics.json").read_text())["inputs"]["result"] == str(foreign)
    markdown = (out / "metrics.md").read_text()
    assert "| content block3_conv2 | MSE" in markdown and "SSIM" in markdown
    with Image.open(out / "comparison.png") as img:
        assert 96 <= img.height <= 96 + 60 and img.mode == "RGB"


def test_identical_result_and_reference_write_inf_psnr_as_text(params, content, style, tmp_path):
    m = compare.score(content, content, style, reference=content, params=params, size=SIDE)
    out = compare.write_comparison(tmp_path, m, compare.comparison_sheet(content, style, content, content))
    assert json.loads((out / "metrics.json").read_text())["reference"]["psnr"] == "inf"


def test_bad_inputs_say_what_to_do(params, content, style, tmp_path):
    with pytest.raises(UserError, match="no block4_conv2"):
        compare.score(content, content, style, params=params, content_layers=["conv4_2"], size=SIDE)
    with pytest.raises(UserError, match="at least 4 px"):
        compare.score(np.zeros((1, 40, 3)), content, style, params=params, size=SIDE)
    with pytest.raises(UserError, match="SSIM needs at least 11 px"):
        compare.score(content, content, style, reference=np.zeros((8, 8, 3)), params=params, size=SIDE)
    with pytest.raises(UserError, match="2 finite non-negative weights"):
        compare.score(content, content, [style, style], style_weights=[1], params=params, size=SIDE)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        compare.write_comparison(tmp_path / "file", {}, np.zeros((4, 4, 3)))


def test_metrics_say_what_each_number_means_beside_reference_points(params, content, style):
    """Issue 24.3: "relative" defined, the content photo and the style image scored the same way, resizes
    listed."""
    result = images.resize(content, (24, 32), "lanczos")
    m = compare.score(result, content, style, reference=content, params=params, size=48)
    points = m["reference_points"]
    assert list(points) == ["content photo", "style image", "reference"]
    assert all(d["relative"] == 0 for d in points["content photo"]["content"].values())
    # the photo is far from the painting's statistics, the painting far from the photo's features
    photo_style = [d["relative"] for d in points["content photo"]["style"].values()]
    painting_content = [d["relative"] for d in points["style image"]["content"].values()]
    assert min(photo_style) > 0.05 and min(painting_content) > 0.05
    assert "result 32×24 → 48×36 px (the working size, --size, Lanczos)" in m["resized"]
    assert any(line.startswith("result 32×24 → 64×48 px (to the reference's size for SSIM") for line in m["resized"])
    markdown = compare.metrics_markdown(m)
    assert "Σ(F − P)² / ΣP²" in markdown and "‖G − A‖² / ‖A‖²" in markdown
    assert "| term | result | content photo | style image | reference |" in markdown
    assert "the content photo itself SSIM" in markdown and "## Resized before scoring" in markdown
    assert "layers the preview recipe's (the weights stop before block 4)" in markdown


def test_recipe_chooses_the_layers_and_says_so(params, content, style, vgg19_h5):
    m = compare.score(content, content, style, params=params, size=SIDE, recipe="preview")
    assert m["layers"] == {"content": ["block3_conv2"], "style": ["block1_conv1", "block2_conv1", "block3_conv1"]}
    assert m["layers_from"] == "the preview recipe's"
    full = weights.load_weights(vgg19_h5, "vgg19", weights.present_conv_layers(vgg19_h5, "vgg19"))
    assert compare.chosen_layers(full)[1:] == (["block4_conv2"], list(compare.PAPER_LAYERS[1]),
                                               "the paper's (the whole network)")
    assert compare.chosen_layers(full, "tf-eager-blog")[1][0] == "block5_conv2"


def test_the_difference_panel_is_a_colour_map_and_the_row_has_no_gaps(content, style):
    """Agreement is white on the diverging map (not black noise); panels are as wide as their images."""
    sheet = compare.comparison_sheet(content, style, content, tile_height=160)
    h, w = sheet.shape[:2]
    widths = 160 * (content.shape[1] / content.shape[0]) * 3 + 160 * style.shape[1] / style.shape[0]
    assert widths < w < widths + 160  # the colour bar and small margins, no padding to the widest tile
    panel = sheet[h // 2 - 10: h // 2 + 10, int(w - 70 - 0.4 * 160): int(w - 70 - 0.2 * 160)]
    assert panel.min() > 235  # zero difference: the map's white centre


def cli_compare(capsys, out, *extra, content=SHARED_IMAGES / "tubingen.jpg", real=None):
    argv = ["compare", SHARED_IMAGES / "tubingen.jpg", "--content", content, "--style",
            SHARED_IMAGES / "starry_night.jpg", "--out", out, "--size", 48, *extra]
    from support import run_main
    return run_main(argv + (["--weights", real] if real else []), capsys)


@pytest.mark.parametrize("case", ["nan weight", "inf weight", "input is an output", "earlier comparison",
                                  "too large"])
def test_bad_compare_is_one_line_exit_2_and_replaces_nothing(case, real_weights, tmp_path, capsys):
    """Issues 20.3, 20.4, 20.14."""
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "comparison.png"
    Image.new("RGB", (8, 8), "red").save(earlier)
    before = earlier.read_bytes()
    extra = {"nan weight": ["--style-blend-weights", "nan"], "inf weight": ["--style-blend-weights", "inf"],
             "input is an output": ["--overwrite"], "earlier comparison": [], "too large": ["--size", 60000]}[case]
    content = earlier if case == "input is an output" else SHARED_IMAGES / "tubingen.jpg"
    if case in ("nan weight", "inf weight", "too large"):
        earlier.unlink()
        before = None
    code, _, err = cli_compare(capsys, out, *extra, content=content, real=real_weights)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert {"nan weight": "finite non-negative weights", "inf weight": "finite non-negative weights",
            "input is an output": "is compare's own output comparison.png",
            "earlier comparison": "pass --overwrite", "too large": "--size 60000: comparing at"}[case] in err
    assert sorted(p.name for p in out.iterdir()) == ([] if before is None else ["comparison.png"])
    if before is not None:
        assert earlier.read_bytes() == before


def test_overwrite_replaces_an_earlier_comparison(real_weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_compare(capsys, out, real=real_weights)[0] == 0
    first = (out / "metrics.json").read_text()
    code, stdout, err = cli_compare(capsys, out, "--overwrite", "--recipe", "preview", real=real_weights)
    assert code == 0, err
    assert "layers the preview recipe's" in stdout and (out / "metrics.json").read_text() != first
