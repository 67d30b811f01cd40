#!/usr/bin/env python
"""Render a report page in headless Chromium and check the screenshot is not blank.

  python bench/report_screenshot.py                      # builds a sample directory, reports it, screenshots
  python bench/report_screenshot.py DIR                  # reports DIR (writes DIR/index.html), screenshots
  python bench/report_screenshot.py --screenshot out.png --window-size 1280,2000

Needs a `chromium` binary (Debian: apt-get install chromium). The sample directory (default
/tmp/report_sample, rebuilt each time) holds: a finished run (the README's preview result, the preview
recipe's settings, a loss log shaped like an L-BFGS run's with its plot and grid), an interrupted
two-scale run (only STEM.partial.png), a figure sheet made with sheets.figure_sheet from shared/images
thumbnails, and a comparison. The loss values are made up: the sample exercises the layout, not the
algorithm. "Not blank" means: at least 5 % of the pixels differ from the page background and the
screenshot holds at least 1000 distinct colours (a page of images and text; an error page has a few dozen).
"""
import argparse
import csv
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "images"


def loss_log(path, sizes, evaluations, start, seconds_per_evaluation):
    """A made-up log in the CLI's columns: each scale's total falls like an L-BFGS run's, then flattens."""
    rows, done = [], 0
    for k, size in enumerate(sizes):
        for i in range(1, evaluations + 1):
            done += 1
            total = start * 4.0 ** k * (0.03 + math.exp(-i / 12) + 0.02 * math.exp(-i / 60))
            rows.append({"size": size, "iteration": i, "evaluations": done, "total": total,
                         "content": 0.3 * total, "style": 0.65 * total, "tv": 0.05 * total,
                         "seconds": round(done * seconds_per_evaluation, 3)})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def loss_plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for term in ("total", "content", "style", "tv"):
        ax.semilogy([r["evaluations"] for r in rows], [r[term] for r in rows], label=term)
    ax.set_xlabel("evaluations")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_sample(directory):
    from legacy_nst import recipes
    from legacy_nst.images import demo_pair, load_image, resize, save_image, target_shape
    from legacy_nst.pictures.sheets import contact_sheet, figure_sheet
    from legacy_nst.tools.compare import comparison_sheet

    def thumb(name, size=160):
        image = load_image(SHARED / name)
        return resize(image, target_shape(image.shape, size, "long-side"), "lanczos")

    shutil.rmtree(directory, ignore_errors=True)
    runs, figure, comparison = directory / "runs", directory / "figure2", directory / "compare_keras_lbfgs"
    for folder in (runs, figure, comparison):
        folder.mkdir(parents=True)

    result = load_image(ROOT / "docs" / "preview_tubingen_starry_night.png")
    save_image(result, runs / "tubingen_starry.png")
    rows = loss_log(runs / "tubingen_starry_losses.csv", [320], 120, 2.0e6, 0.33)
    loss_plot(rows, runs / "tubingen_starry_losses.png")
    (runs / "tubingen_starry.json").write_text(json.dumps(dataclasses.asdict(recipes.get("preview")), indent=1))
    content, style = thumb("tubingen.jpg"), thumb("starry_night.jpg")
    steps = [(f"iteration {i}", (1 - t) * content + t * resize(style, content.shape[:2], "lanczos"))
             for i, t in zip((20, 40, 60, 80, 100), (0.1, 0.2, 0.3, 0.4, 0.5))]
    save_image(contact_sheet(steps, 5, tile_height=96), runs / "tubingen_starry_grid.png")

    village, swirls = demo_pair(192)
    save_image(0.6 * village + 0.4 * swirls, runs / "demo.partial.png")
    loss_log(runs / "demo_losses.csv", [128, 256], 40, 3.0e5, 0.1)

    styles = [thumb(n) for n in ("starry_night.jpg", "shipwreck.jpg", "The_Great_Wave_off_Kanagawa.jpg")]
    cells = {(r, c): (1 - t) * content + t * resize(s, content.shape[:2], "lanczos")
             for r, t in enumerate((0.25, 0.5)) for c, s in enumerate(styles) if (r, c) != (1, 2)}
    sheet = figure_sheet(cells, ["α/β = 1e-3", "α/β = 1e-4"], ["The Starry Night", "The Shipwreck", "The Great Wave"],
                         inputs=[("content", content)], title="Figure 2 (sample)",
                         missing={(1, 2): "not run: needs block4 weights"}, tile_height=128)
    save_image(sheet, figure / "sheet.png")
    with open(figure / "cells.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "column", "image", "evaluations", "total"])
        for (r, c) in sorted(cells):
            save_image(cells[r, c], figure / f"cell_{r}_{c}.png")
            writer.writerow([["1e-3", "1e-4"][r], ["starry", "shipwreck", "wave"][c], f"cell_{r}_{c}.png", 1000,
                             f"{1.5e5 * (r + 1) * (c + 2):.4g}"])
        writer.writerow(["1e-4", "wave", "", "", ""])

    save_image(comparison_sheet(content, style, result, thumb("starry_night_crop.png", 240), tile_height=180),
               comparison / "comparison.png")
    (comparison / "metrics.json").write_text(json.dumps(
        {"ssim": 0.7314, "psnr_db": 21.8, "gram_distance": {"block1_conv1": 0.0123, "block2_conv1": 0.0457},
         "note": "made-up numbers <for the layout>"}, indent=1))


def screenshot(page, path, window_size):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("no chromium on PATH: apt-get install chromium")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--screenshot={path}", f"--window-size={window_size}", Path(page).resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode or not Path(path).is_file():
        sys.exit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def not_blank(path):
    pixels = np.asarray(Image.open(path).convert("RGB"))
    flat = pixels.reshape(-1, 3)
    background = np.median(flat, axis=0)
    covered = float(np.mean(np.any(np.abs(flat.astype(int) - background) > 8, axis=1)))
    colours = len(np.unique(flat.view([("", flat.dtype)] * 3)))
    return pixels.shape, covered, colours


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", help="the directory to report (default: build a sample)")
    parser.add_argument("--sample-dir", default="/tmp/report_sample", type=Path)
    parser.add_argument("--screenshot", default="/tmp/report_screenshot.png", type=Path)
    parser.add_argument("--window-size", default="1280,2000")
    args = parser.parse_args()
    from legacy_nst.tools.report import write_report

    directory = Path(args.directory) if args.directory else args.sample_dir
    if not args.directory:
        build_sample(directory)
    page = write_report(directory)
    screenshot(page, args.screenshot, args.window_size)
    shape, covered, colours = not_blank(args.screenshot)
    print(f"{args.screenshot}: {shape[1]} x {shape[0]}, {covered:.1%} of pixels off the background, "
          f"{colours} colours")
    if covered < 0.05 or colours < 1000:
        sys.exit("the screenshot looks blank")


if __name__ == "__main__":
    main()
