"""Score any stylised image against its content, its style(s) and optionally a reference result.

Sizes (inputs may be any size and need not come from this project):
  - features are read at the working size: the result resized to `size` on its long side (default 512,
    the size most recipes run at; None keeps the result's own size), Lanczos;
  - the content and a reference are resized to exactly that (H, W), so positions correspond (an aspect
    ratio that differs from the result's is stretched, and `sizes` in the metrics shows it);
  - each style image keeps its aspect ratio with its long side equal to the working long side, as the
    recipes size styles (Grams do not need positions to correspond);
  - SSIM and PSNR are taken at the reference's own size, the result resized to it.
Layers: those of `recipe` when one is given (on its network; the CLI takes its pooling too); else the paper's (content
conv4_2, style conv1_1 ... conv5_1) where the weights reach block 5, the preview recipe's otherwise.
Reference points: the content photo and each style image are scored as if they were the result (and the
reference, when given), the same way, so a number can be read against what "the photo itself" and "the
painting itself" score. Every resize is listed in the metrics ("resized").
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
import os
from pathlib import Path

import numpy as np
from skimage import color, metrics

from .. import engine, images, recipes
from ..atomic import write_text
from ..errors import UserError
from ..pictures.plots import comparison_figure
from ..runner import memory
from ..runner.job import valid_blend_weights
from ..vgg.architecture import canonical_layer, conv_layers, min_input_side

DEFAULT_SIZE = 512
# The paper's layers when the weights reach them; otherwise the preview recipe's (the partial VGG19).
PAPER_LAYERS = (("block4_conv2",), ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"))
SHALLOW_LAYERS = (("block3_conv2",), ("block1_conv1", "block2_conv1", "block3_conv1"))
OUTPUTS = ("comparison.png", "metrics.json", "metrics.md")
SSIM_SIDE = 11  # the Gaussian window's side at σ = 1.5 (skimage truncates at 3.5σ)


def default_layers(params):
    """(content layers, style layers) for weights `params`: the paper's when every one of them is present."""
    deep = all(layer in params for group in PAPER_LAYERS for layer in group)
    return PAPER_LAYERS if deep else SHALLOW_LAYERS


def chosen_layers(params, recipe=None, content_layers=None, style_layers=None):
    """(network, content layers, style layers, where they come from): the flags' layers, else the recipe's
    (on its network), else default_layers."""
    if recipe is not None:
        recipe = recipes.get(recipe) if isinstance(recipe, str) else recipe
        network = recipe.network
        defaults, source = (recipe.content_layers, recipe.style_layers), f"the {recipe.name} recipe's"
    else:
        network = "vgg19"
        defaults = default_layers(params)
        source = ("the paper's (the whole network)" if defaults == PAPER_LAYERS else
                  "the preview recipe's (the weights stop before block 4)")
    if content_layers or style_layers:
        source = "chosen with --content-layers / --style-layers"
    content = [canonical_layer(network, n) for n in (content_layers or defaults[0])]
    style = [canonical_layer(network, n) for n in (style_layers or defaults[1])]
    return network, content, style, source


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
    """FᵀF / (C·H·W) of an (H, W, C) activation: the objective's Gram (engine.gram), in float64."""
    return np.asarray(engine.gram(features[None].astype(np.float64), recipes.GramNorm.ELEMENTS))


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


def _resized(what, before, after, why):
    return f"{what} {before[1]}×{before[0]} → {after[1]}×{after[0]} px ({why}, Lanczos)"


def _check_memory(network, layers, shapes, size):
    """Refuse a working size whose VGG passes would not fit in memory (memory.py's model, objective only)."""
    h, w = max(shapes, key=lambda s: s[0] * s[1])
    need = memory.estimate_bytes(network, layers, h, w, None)
    available = memory.available_bytes()
    if not memory.fits(need, available):
        side = memory.largest_side_that_fits(network, layers, (h, w), None, available)
        raise UserError(f"--size {size}: comparing at {w}×{h} px needs about {need / memory.GIB:.1f} GiB of "
                        f"memory and {available / memory.GIB:.1f} GiB is available; use --size {side} or less")


def score(result, content, styles, reference=None, *, params, network="vgg19", pooling="max",
          content_layers=None, style_layers=None, style_weights=None, size=DEFAULT_SIZE, config=None,
          recipe=None):
    """Metrics of `result` (path or RGB 0..255 array) against `content`, `styles` (one or a list) and an
    optional `reference`, as a JSON-ready dict; see the module's docstring for every number. `recipe` (a
    name or Recipe): score at its layers, on its network (the CLI passes its pooling)."""
    styles = [styles] if isinstance(styles, (str, Path, np.ndarray)) else list(styles)
    if not styles:
        raise UserError("compare needs at least one --style image")
    recipe_network, content_layers, style_layers, source = chosen_layers(params, recipe, content_layers,
                                                                         style_layers)
    network = recipe_network if recipe is not None else network
    missing = [n for n in content_layers + style_layers if n not in params]
    if missing:
        raise UserError(f"the weights have no {missing[0]}; choose layers down to "
                        f"{[n for n in conv_layers(network) if n in params][-1]} or use the full weight file")
    weights = np.asarray(style_weights or [1.0] * len(styles), np.float64)
    if len(weights) != len(styles) or not valid_blend_weights(weights):
        raise UserError(f"--style-blend-weights: give {len(styles)} finite non-negative weights, not all 0 "
                        f"(got {' '.join(f'{w:g}' for w in weights)})")
    weights = weights / weights.sum()

    result_in, result_name = _image(result, "result")
    content_in, content_name = _image(content, "content")
    styles_in = [_image(s, "style") for s in styles]
    reference_in = None if reference is None else _image(reference, "reference")
    work = images.target_shape(result_in.shape, size, "long-side")
    style_work = [images.target_shape(s.shape, max(work), "long-side") for s, _ in styles_in]
    layers = sorted(set(content_layers + style_layers), key=conv_layers(network).index)
    _check_memory(network, layers, [work] + style_work, size)
    resizes = [("result", result_in, work, "the working size, --size"),
               ("content", content_in, work, "to the result's positions")]
    resizes += [(f"style {i + 1}", s, t, "long side to the working size, for its Grams")
                for i, ((s, _), t) in enumerate(zip(styles_in, style_work))]
    resizes += [(f"style {i + 1}", s, work, "to the result's positions, as a reference point")
                for i, (s, _) in enumerate(styles_in)]
    resized = [_resized(what, image.shape, shape, why) for what, image, shape, why in resizes
               if image.shape[:2] != tuple(shape)]
    sized = {"result": images.resize(result_in, work, "lanczos"),
             "content": images.resize(content_in, work, "lanczos")}
    style_sized = [images.resize(s, t, "lanczos") for (s, _), t in zip(styles_in, style_work)]
    for what, image in list(sized.items()) + [("style", s) for s in style_sized]:
        _check_side(network, layers, image, what)
    # the reference points, scored as the result is: each at the result's working positions
    points = {"content photo": sized["content"]}
    points.update({f"style image {i + 1}" if len(styles) > 1 else "style image": images.resize(s, work, "lanczos")
                   for i, (s, _) in enumerate(styles_in)})
    if reference_in is not None:
        points["reference"] = images.resize(reference_in[0], work, "lanczos")

    out = {
        "inputs": {"result": result_name, "content": content_name, "styles": [n for _, n in styles_in],
                   "style_weights": weights.tolist()},
        "network": network, "pooling": pooling, "layers": {"content": content_layers, "style": style_layers},
        "layers_from": source,
        "sizes": {"working": list(work), "result": _shape(result_in), "content": _shape(content_in),
                  "styles": [_shape(s) for s, _ in styles_in], "styles_working": [_shape(s) for s in style_sized]},
        "resized": resized,
    }

    with engine.FeatureProbe(network, params, layers, pooling, config) as probe:
        features = {name: probe(image) for name, image in sized.items()}
        style_grams = {layer: sum(w * gram(probe(s)[layer]) for w, s in zip(weights, style_sized))
                       for layer in style_layers}
        out.update(feature_distances(features["result"], features["content"], style_grams, content_layers,
                                     style_layers))
        out["reference_points"] = {
            name: feature_distances(features["content"] if name == "content photo" else probe(image),
                                    features["content"], style_grams, content_layers, style_layers)
            for name, image in points.items()}
        out["colour"] = {"result": colour_stats(sized["result"]), "content": colour_stats(sized["content"]),
                         "styles": [colour_stats(s) for s in style_sized],
                         **colour_distances(sized["result"], sized["content"], style_sized)}
        if reference_in is not None:
            out["reference"] = _reference_scores(probe, reference_in, result_in, content_in, features["result"],
                                                 work, content_layers, style_layers)
            out["inputs"]["reference"] = reference_in[1]
            out["resized"] += out["reference"].pop("resized")
    return out


def _similarity(reference, image):
    """(SSIM, PSNR) of `image` against `reference`, both float64 at the reference's size."""
    ssim = metrics.structural_similarity(reference, image, data_range=255, channel_axis=-1, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False)
    with np.errstate(divide="ignore"):  # identical images: PSNR is +inf, which is the right answer
        psnr = metrics.peak_signal_noise_ratio(reference, image, data_range=255)
    return float(ssim), float(psnr)


def _reference_scores(probe, reference, result, content, result_features, work, content_layers, style_layers):
    """SSIM and PSNR at the reference's size (and the content photo's, as a reference point) and the feature
    distances to the reference."""
    reference, name = reference
    h, w = reference.shape[:2]
    if min(h, w) < SSIM_SIDE:
        raise UserError(f"{name}: the reference is {w}×{h} px; SSIM needs at least {SSIM_SIDE} px a side")
    target = reference.astype(np.float64)
    ssim, psnr = _similarity(target, images.resize(result, (h, w), "lanczos").astype(np.float64))
    content_ssim, content_psnr = _similarity(target, images.resize(content, (h, w), "lanczos").astype(np.float64))
    resized = [_resized(what, image.shape, (h, w), "to the reference's size for SSIM and PSNR")
               for what, image in (("result", result), ("content", content)) if image.shape[:2] != (h, w)]
    if tuple(work) != (h, w):
        resized.append(_resized("reference", reference.shape, work, "the working size, for its features"))
    ref_features = probe(images.resize(reference, work, "lanczos"))
    grams = {layer: gram(ref_features[layer]) for layer in style_layers}
    return {"name": name, "size": [h, w], "ssim": ssim, "psnr": psnr,
            "content_photo": {"ssim": content_ssim, "psnr": content_psnr}, "resized": resized,
            **feature_distances(result_features, ref_features, grams, content_layers, style_layers)}


def luminance(rgb):
    """CIE L* (0..100) of an RGB 0..255 image."""
    return color.rgb2lab(np.clip(rgb, 0, 255) / 255.0)[..., 0]


def comparison_sheet(content, styles, result, reference=None, tile_height=256):
    """One row: content | style(s) | result | reference (if given) | the signed lightness difference
    L*(result) − L*(reference, else content) on a diverging colour map with its colour bar (matplotlib),
    every panel `tile_height` px high and as wide as its image's aspect ratio asks."""
    styles = [styles] if isinstance(styles, (str, Path, np.ndarray)) else list(styles)
    result, _ = _image(result, "result")
    panels = [("content", _image(content, "content")[0])]
    panels += [(f"style {i + 1}" if len(styles) > 1 else "style", _image(s, "style")[0])
               for i, s in enumerate(styles)]
    panels.append(("result", result))
    against, other = "content", panels[0][1]
    if reference is not None:
        against, other = "reference", _image(reference, "reference")[0]
        panels.append(("reference", other))
    difference = luminance(result) - luminance(images.resize(other, result.shape[:2], "lanczos"))
    return comparison_figure(panels, difference, f"lightness L*: result − {against}", tile_height)


def check_outputs(out_dir, inputs, overwrite=False):
    """Refuse an --out that is a file, an input that is one of the outputs, or earlier outputs without
    `overwrite` (UserError), before any work."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file; give a directory for the comparison")
    outputs = {os.path.realpath(out_dir / name): name for name in OUTPUTS}
    for what, path in inputs:
        if isinstance(path, (str, Path)) and os.path.realpath(path) in outputs:
            raise UserError(f"{what} {path}: is compare's own output {outputs[os.path.realpath(path)]} in --out "
                            f"{out_dir}; copy it elsewhere or choose another --out")
    present = [name for name in OUTPUTS if os.path.lexists(out_dir / name)]
    if present and not overwrite:
        raise UserError(f"--out {out_dir}: already holds {', '.join(present)} (an earlier comparison); pass "
                        "--overwrite to replace them, or choose another --out")


def _jsonable(value):
    """Plain JSON: an infinite PSNR (identical images) becomes the string "inf"."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


DEFINITIONS = (
    "F: the result's VGG features at a layer (H·W positions × C channels), P: the content photo's, "
    "G = FᵀF / (C·H·W): the result's Gram matrix (jcjohnson's normalisation, so layers and sizes compare), "
    "A: the style images' Grams, blended by the style weights.",
    "content MSE = mean((F − P)²); content relative = Σ(F − P)² / ΣP²: 0 is the photo's own features, 1 is as "
    "far as an all-black image (F = 0).",
    "style ‖G − A‖² = Σ(G − A)² (squared Frobenius norm); style relative = ‖G − A‖² / ‖A‖²: 0 is the "
    "painting's own statistics, 1 is as far as an image with no texture at all (G = 0).",
    "Lower is closer for every distance. Each reference point is scored exactly as the result: read the "
    "result's numbers between the content photo's (perfect content, no style) and the style image's "
    "(perfect style, no content).",
    "SSIM (Wang et al. 2004, Gaussian window σ = 1.5, over RGB 0..255): 1 identical, near 0 unrelated "
    "structure. PSNR = 10·log10(255² / mean squared pixel difference) dB: higher is closer, inf identical.",
    "Lab: CIE L*a*b* (D65); L* lightness 0..100, a* green–red, b* blue–yellow.",
)


def _number(value):
    return "–" if value is None else f"{value:.4g}"


def _term_rows(metrics):
    """(label, section, layer, field) per term, content layers first."""
    return ([(f"content {layer}", "content", layer, "relative") for layer in metrics["content"]]
            + [(f"style {layer}", "style", layer, "relative") for layer in metrics["style"]])


def _raw_rows(section):
    rows = [f"| content {layer} | MSE {_number(d['mse'])} |" for layer, d in section["content"].items()]
    rows += [f"| style {layer} | ‖G − A‖² {_number(d['squared'])} |" for layer, d in section["style"].items()]
    return rows


def metrics_markdown(metrics):
    """The metrics as Markdown: the relative distances beside the reference points, the raw ones, colour,
    the reference, what was resized, and what every number means."""
    inputs = metrics["inputs"]
    points = metrics.get("reference_points", {})
    layers = metrics["layers"]
    lines = ["# Comparison", "",
             f"result `{inputs['result']}`, content `{inputs['content']}`, "
             f"style {', '.join(f'`{s}`' for s in inputs['styles'])}"
             + (f", reference `{inputs['reference']}`" if "reference" in inputs else ""), "",
             f"Network: {metrics['network']} ({metrics['pooling']} pooling); layers {metrics.get('layers_from', '')}: "
             f"content {', '.join(layers['content'])}, style {', '.join(layers['style'])}; working size "
             f"{metrics['sizes']['working'][1]}×{metrics['sizes']['working'][0]} px.", "",
             "## Relative distances to the content and the style", "",
             "Lower is closer. Beside the result, the same distances for reference points scored the same way.", "",
             "| term | result | " + " | ".join(points) + " |", "| --- | --- |" + " --- |" * len(points)]
    for label, section, layer, field in _term_rows(metrics):
        lines.append(f"| {label} | {_number(metrics[section][layer][field])} | "
                     + " | ".join(_number(p[section][layer][field]) for p in points.values()) + " |")
    lines += ["", "## Raw distances of the result", "", "| term | distance |", "| --- | --- |", *_raw_rows(metrics),
              "", "## Colour", "", "| image | RGB mean | RGB std | Lab mean | Lab std |",
              "| --- | --- | --- | --- | --- |"]
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
        photo = ref.get("content_photo", {})
        lines += ["", "## Against the reference", "",
                  f"At {ref['size'][1]}×{ref['size'][0]} px (the reference's size): result SSIM {ref['ssim']:.4f}, "
                  f"PSNR {ref['psnr']:.2f} dB"
                  + (f"; the content photo itself SSIM {photo['ssim']:.4f}, PSNR {photo['psnr']:.2f} dB" if photo
                     else "") + ".", "",
                  "Distances from the result's features to the reference's (the reference taken as the target):", "",
                  "| term | distance | relative |", "| --- | --- | --- |"]
        lines += [f"| content {layer} | MSE {_number(d['mse'])} | {_number(d['relative'])} |"
                  for layer, d in ref["content"].items()]
        lines += [f"| style {layer} | ‖G − A‖² {_number(d['squared'])} | {_number(d['relative'])} |"
                  for layer, d in ref["style"].items()]
    resized = metrics.get("resized", [])
    lines += ["", "## Resized before scoring", ""] + ([f"- {line}" for line in resized] or ["- nothing"])
    lines += ["", "## What the numbers mean", ""] + [f"- {line}" for line in DEFINITIONS]
    return "\n".join(lines) + "\n"


def write_comparison(out_dir, metrics, sheet, overwrite=False, inputs=()):
    """`comparison.png`, `metrics.json` and `metrics.md` in `out_dir` (created), each written atomically;
    check_outputs first (earlier outputs are replaced only with `overwrite`, an input never)."""
    check_outputs(out_dir, inputs, overwrite)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images.save_image(sheet, str(out_dir / "comparison.png"))
    write_text(out_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=2, ensure_ascii=False) + "\n")
    write_text(out_dir / "metrics.md", metrics_markdown(metrics))
    return out_dir
