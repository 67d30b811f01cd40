#!/usr/bin/env python
"""The README's pictures of the options people reach for (issue 10), made by the project itself.

  python bench/options_gallery.py            # docs/options/*.png and docs/options.png (about 8 min, 2 cores)

Every picture is the jcjohnson recipe (neural-style's defaults) with its `-init image` (init = content) on
the whole VGG19 (vgg19_full_q8.npz beside this repository: content relu4_2, style relu1_1..relu5_1), on
Tübingen with The Starry Night, --size 192 at one level, 150 iterations, one option changed at a time (the
result images and the plain run's loss plot are kept in docs/options/); the masks picture paints The Starry
Night on the left half and The Great Wave on the right (neural-style's Gram ÷ C·H·W, so guided Grams
compare). Each run goes through legacy_nst.run(Job(...)).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from legacy_nst import Job, Output, Style, run  # noqa: E402
from legacy_nst.images import load_image, save_image  # noqa: E402
from legacy_nst.pictures.sheets import contact_sheet  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_full_q8.npz"))
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--out", default=str(ROOT / "docs" / "options"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tubingen, starry, wave = (str(SHARED / "images" / n) for n in
                              ("tubingen.jpg", "starry_night.jpg", "The_Great_Wave_off_Kanagawa.jpg"))
    shape = load_image(tubingen).shape[:2]
    left = np.zeros(shape, np.float32)
    left[:, : shape[1] // 2] = 1
    runs = {
        "plain": dict(),
        "preserve-colors post": dict(preserve_colors="post"),
        "preserve-colors histogram": dict(preserve_colors="histogram"),
        "preserve-colors luminance": dict(preserve_colors="luminance"),
        "style-scale 0.5": dict(styles=[Style(starry, scale=0.5)]),
        "style-scale 2": dict(styles=[Style(starry, scale=2.0)]),
        "style-masks (left Starry Night, right Great Wave)": dict(styles=[Style(starry, mask=left),
                                                                          Style(wave, mask=1 - left)]),
    }
    tiles = []
    for label, changes in runs.items():
        settings = dict(content=tubingen, styles=[Style(starry)], recipe="jcjohnson", weights=args.weights,
                        overrides={"size": args.size, "iterations": args.iterations, "init": "content"}, device="cpu",
                        schedule=(args.size,),  # one level, so each picture shows one option alone
                        output=Output(str(out / (label.split(" (")[0].replace(" ", "_") + ".png")), overwrite=True))
        settings.update(changes)
        start = time.perf_counter()
        result = run(Job(**settings))
        print(f"{label}: {result.evaluations} evaluations, {time.perf_counter() - start:.1f} s, "
              f"final loss {result.history[-1]['total']:.4g}", flush=True)
        tiles.append((label, result.image))
    save_image(contact_sheet(tiles, columns=4, tile_height=180), str(out.parent / "options.png"))
    print(f"wrote {out}/ and {out.parent / 'options.png'}")


if __name__ == "__main__":
    main()
