"""Score any stylised image against its content, its style(s) and optionally a reference result.

Sizes (inputs may be any size and need not come from this project):
  - features are read at the working size: the result resized to `size` on its long side (default 512,
    the size most recipes run at; None keeps the result's own size), Lanczos;
  - the content and a reference are resized to exactly that (H, W), so positions correspond (an aspect
    ratio that differs from the result's is stretched, and `sizes` in the metrics shows it);
  - each style image keeps its aspect ratio with its long side equal to the working long side, as the
    recipes size styles (Grams do not need positions to correspond);
  - SSIM and PSNR are taken at the reference's own size, the result resized to it.
Distances:
  - content, per layer: mean((F − P)²), and Σ(F − P)² / ΣP² ("relative");
  - style, per layer: G = FᵀF / (C·H·W) (jcjohnson's normalisation, so layers and sizes compare),
    ‖G − A‖²_F and ‖G − A‖²_F / ‖A‖²_F, A the styles' Grams blended by `style_weights` (equal by default,
    as a multi-style run blends them);
  - colour: per-channel mean and std in RGB (0..255) and CIE Lab (skimage.color.rgb2lab, D65), the
    per-pixel mean |ΔL|, |Δa|, |Δb| between result and content, and the shift of the a and b means from
    each style's;
  - SSIM as Wang et al. 2004 (Gaussian window σ = 1.5, population covariances) over RGB 0..255, and PSNR.
"""
import json
import math
from pathlib import Path

import numpy as np
from skimage import color, metrics

from . import images
from .architecture import canonical_layer, conv_layers, min_input_side
from .atomic import write_text
from .errors import UserError
from .network import FeatureProbe
from .reporting import contact_sheet

DEFAULT_SIZE = 512
# The paper's layers when the weights reach them; otherwise the preview recipe's (the partial VGG19).
PAPER_LAYERS = (("block4_conv2",), ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"))
SHALLOW_LAYERS = (("block3_conv2",), ("block1_conv1", "block2_conv1", "block3_conv1"))
DIFFERENCE_GAIN = 4
SSIM_SIDE = 11  # the Gaussian window's side at σ = 1.5 (skimage truncates at 3.5σ)


def default_layers(params):
    """(content layers, style layers) for weights `params`: the paper's when every one of them is present."""
    deep = all(layer in params for group in PAPER_LAYERS for layer in group)
    return PAPER_LAYERS if deep else SHALLOW_LAYERS


def _image(value, what):
    """A float32 RGB array from a path or an array, with a name for messages and metrics."""
    if isinstance(value, (str, Path)):
        return images.load_image(str(value)), str(value)
    array = np.asarray(value, np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"the {what} image has shape {array.shape}; expected (H, W, 3) RGB")
    return array, f"({what} array)"


def _shape(image):
    return [int(image.shape[0]), int(image.shape[1])]


def _ratio(num, den):
    return float(num / den) if den > 0 else None


def gram(features):
    """FᵀF / (C·H·W) of an (H, W, C) activation, in float64."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    return flat.T @ flat / flat.size


def feature_distances(features, target_features, target_grams, content_layers, style_layers):
    """{"content": {layer: {mse, relative}}, "style": {layer: {squared, relative}}}."""
    content = {}
    for layer in content_layers:
        f, p = features[layer].astype(np.float64), target_features[layer].astype(np.float64)
        diff = np.square(f - p)
        content[layer] = {"mse": float(diff.mean()), "relative": _ratio(diff.sum(), np.square(p).sum())}
    style = {}
    for layer in style_layers:
        a = target_grams[layer]
        squared = float(np.square(gram(features[layer]) - a).sum())
        style[layer] = {"squared": squared, "relative": _ratio(squared, np.square(a).sum())}
    return {"content": content, "style": style}


def colour_stats(rgb):
    """Per-channel mean and std in RGB 0..255 and in CIE Lab."""
    lab = color.rgb2lab(np.clip(rgb, 0, 255) / 255.0)
    return {"rgb": {"mean": rgb.mean((0, 1)).tolist(), "std": rgb.std((0, 1)).tolist()},
            "lab": {"mean": lab.mean((0, 1)).tolist(), "std": lab.std((0, 1)).tolist()}}


def colour_distances(result, content, styles):
    """Result vs content per pixel (same size), result vs each style by the a and b means."""
    lab_result, lab_content = (color.rgb2lab(np.clip(x, 0, 255) / 255.0) for x in (result, content))
    per_pixel = np.abs(lab_result - lab_content).mean((0, 1))
    shifts = []
    for style in styles:
        lab_style = color.rgb2lab(np.clip(style, 0, 255) / 255.0)
        shift = np.abs(lab_result.mean((0, 1)) - lab_style.mean((0, 1)))
        shifts.append({"abs_dmean_a": float(shift[1]), "abs_dmean_b": float(shift[2])})
    return {"result_vs_content": dict(zip(("mean_abs_dL", "mean_abs_da", "mean_abs_db"), map(float, per_pixel))),
            "result_vs_style": shifts}


def _check_side(network, layers, image, what):
    need = min_input_side(network, layers)
    if min(image.shape[:2]) < need:
        h, w = image.shape[:2]
        raise UserError(f"the {what} image is {w}×{h} px at the comparison size; the deepest layer needs "
                        f"at least {need} px on each side: use a larger --size")


def score(result, content, styles, reference=None, *, params, network="vgg19", pooling="max",
          content_layers=None, style_layers=None, style_weights=None, size=DEFAULT_SIZE, config=None):
    """Metrics of `result` (path or RGB 0..255 array) against `content`, `styles` (one or a list) and an
    optional `reference`, as a JSON-ready dict; see the module's docstring for every number."""
    styles = [styles] if isinstance(styles, (str, Path, np.ndarray)) else list(styles)
    if not styles:
        raise UserError("compare needs at least one --style image")
    default_content, default_style = default_layers(params)
    content_layers = [canonical_layer(network, n) for n in (content_layers or default_content)]
    style_layers = [canonical_layer(network, n) for n in (style_layers or default_style)]
    missing = [n for n in content_layers + style_layers if n not in params]
    if missing:
        raise UserError(f"the weights have no {missing[0]}; choose layers down to "
                        f"{[n for n in conv_layers(network) if n in params][-1]} or use the full weight file")
    weights = np.asarray(style_weights or [1.0] * len(styles), np.float64)
    if len(weights) != len(styles) or (weights < 0).any() or weights.sum() <= 0:
        raise UserError(f"--style-blend-weights: give {len(styles)} non-negative weights, not all 0")
    weights = weights / weights.sum()

    result_in, result_name = _image(result, "result")
    content_in, content_name = _image(content, "content")
    styles_in = [_image(s, "style") for s in styles]
    work = images.target_shape(result_in.shape, size, "long-side")
    sized = {"result": images.resize(result_in, work, "lanczos"),
             "content": images.resize(content_in, work, "lanczos")}
    style_sized = [images.resize(s, images.target_shape(s.shape, max(work), "long-side"), "lanczos")
                   for s, _ in styles_in]
    layers = sorted(set(content_layers + style_layers), key=conv_layers(network).index)
    for what, image in list(sized.items()) + [("style", s) for s in style_sized]:
        _check_side(network, layers, image, what)

    out = {
        "inputs": {"result": result_name, "content": content_name, "styles": [n for _, n in styles_in],
                   "style_weights": weights.tolist()},
        "network": network, "pooling": pooling, "layers": {"content": content_layers, "style": style_layers},
        "sizes": {"working": list(work), "result": _shape(result_in), "content": _shape(content_in),
                  "styles": [_shape(s) for s, _ in styles_in], "styles_working": [_shape(s) for s in style_sized]},
    }
    with FeatureProbe(network, params, layers, pooling, config) as probe:
        features = {name: probe(image) for name, image in sized.items()}
        style_grams = {layer: sum(w * gram(probe(s)[layer]) for w, s in zip(weights, style_sized))
                       for layer in style_layers}
        out.update(feature_distances(features["result"], features["content"], style_grams, content_layers,
                                     style_layers))
        out["colour"] = {"result": colour_stats(sized["result"]), "content": colour_stats(sized["content"]),
                         "styles": [colour_stats(s) for s in style_sized],
                         **colour_distances(sized["result"], sized["content"], style_sized)}
        if reference is not None:
            out["reference"] = _reference_scores(probe, reference, result_in, features["result"], work,
                                                 content_layers, style_layers)
            out["inputs"]["reference"] = out["reference"].pop("name")
    return out


def _reference_scores(probe, reference, result, result_features, work, content_layers, style_layers):
    reference, name = _image(reference, "reference")
    h, w = reference.shape[:2]
    if min(h, w) < SSIM_SIDE:
        raise UserError(f"{name}: the reference is {w}×{h} px; SSIM needs at least {SSIM_SIDE} px a side")
    at_reference = images.resize(result, (h, w), "lanczos").astype(np.float64)
    ssim = metrics.structural_similarity(reference.astype(np.float64), at_reference, data_range=255,
                                         channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
    with np.errstate(divide="ignore"):  # identical images: PSNR is +inf, which is the right answer
        psnr = metrics.peak_signal_noise_ratio(reference.astype(np.float64), at_reference, data_range=255)
    ref_features = probe(images.resize(reference, work, "lanczos"))
    grams = {layer: gram(ref_features[layer]) for layer in style_layers}
    return {"name": name, "size": [h, w], "ssim": float(ssim), "psnr": float(psnr),
            **feature_distances(result_features, ref_features, grams, content_layers, style_layers)}


def comparison_sheet(content, styles, result, reference=None, tile_height=256):
    """One row of labelled tiles, each `tile_height` high: content | style(s) | result | reference |
    |result − reference| (|result − content| without a reference), amplified DIFFERENCE_GAIN times."""
    styles = [styles] if isinstance(styles, (str, Path, np.ndarray)) else list(styles)
    result, _ = _image(result, "result")
    tiles = [("content", _image(content, "content")[0])]
    tiles += [(f"style {i + 1}" if len(styles) > 1 else "style", _image(s, "style")[0]) for i, s in enumerate(styles)]
    tiles.append(("result", result))
    against, other = "content", tiles[0][1]
    if reference is not None:
        against, other = "reference", _image(reference, "reference")[0]
        tiles.append(("reference", other))
    other = images.resize(other, result.shape[:2], "lanczos")
    difference = np.clip(np.abs(result - other) * DIFFERENCE_GAIN, 0, 255)
    tiles.append((f"|result - {against}| x{DIFFERENCE_GAIN}", difference))
    return contact_sheet(tiles, columns=len(tiles), tile_height=tile_height)


def _jsonable(value):
    """Plain JSON: an infinite PSNR (identical images) becomes the string "inf"."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _number(value):
    return "–" if value is None else f"{value:.4g}"


def _distance_rows(section):
    rows = [f"| content {layer} | MSE {_number(d['mse'])} | relative {_number(d['relative'])} |"
            for layer, d in section["content"].items()]
    rows += [f"| style {layer} | ‖G − A‖² {_number(d['squared'])} | relative {_number(d['relative'])} |"
             for layer, d in section["style"].items()]
    return rows


def metrics_markdown(metrics):
    """The metrics as Markdown tables."""
    inputs = metrics["inputs"]
    lines = ["# Comparison", "",
             f"result `{inputs['result']}`, content `{inputs['content']}`, "
             f"style {', '.join(f'`{s}`' for s in inputs['styles'])}"
             + (f", reference `{inputs['reference']}`" if "reference" in inputs else ""),
             f"{metrics['network']} ({metrics['pooling']} pooling), working size "
             f"{metrics['sizes']['working'][1]}×{metrics['sizes']['working'][0]} px", "",
             "## Distances to content and style", "", "| term | distance | relative |", "| --- | --- | --- |",
             *_distance_rows(metrics), "", "## Colour", "",
             "| image | RGB mean | RGB std | Lab mean | Lab std |", "| --- | --- | --- | --- | --- |"]
    colour = metrics["colour"]
    named = [("result", colour["result"]), ("content", colour["content"])]
    named += [(f"style {i + 1}", c) for i, c in enumerate(colour["styles"])]
    for name, stats in named:
        cells = [" ".join(f"{v:.1f}" for v in stats[space][kind]) for space in ("rgb", "lab") for kind in ("mean", "std")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    per_pixel = colour["result_vs_content"]
    lines += ["", f"Result vs content, per pixel: mean |ΔL| {per_pixel['mean_abs_dL']:.2f}, "
                  f"|Δa| {per_pixel['mean_abs_da']:.2f}, |Δb| {per_pixel['mean_abs_db']:.2f}."]
    for i, shift in enumerate(colour["result_vs_style"]):
        lines.append(f"Result vs style {i + 1}, Lab means: |Δa| {shift['abs_dmean_a']:.2f}, "
                     f"|Δb| {shift['abs_dmean_b']:.2f}.")
    if "reference" in metrics:
        ref = metrics["reference"]
        lines += ["", "## Against the reference", "",
                  f"SSIM {ref['ssim']:.4f}, PSNR {ref['psnr']:.2f} dB at {ref['size'][1]}×{ref['size'][0]} px", "",
                  "| term | distance | relative |", "| --- | --- | --- |", *_distance_rows(ref)]
    return "\n".join(lines) + "\n"


def write_comparison(out_dir, metrics, sheet):
    """`comparison.png`, `metrics.json` and `metrics.md` in `out_dir` (created), each written atomically."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file; give a directory for the comparison")
    out_dir.mkdir(parents=True, exist_ok=True)
    images.save_image(sheet, str(out_dir / "comparison.png"))
    write_text(out_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=2, ensure_ascii=False) + "\n")
    write_text(out_dir / "metrics.md", metrics_markdown(metrics))
    return out_dir
