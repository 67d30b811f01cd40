"""The loss plot: a real PNG of the stated size, every curve in the legend, a log axis that survives zeros."""
import math

import numpy as np
import pytest
from PIL import Image

from legacy_nst.pictures import plots

TERMS = ("content", "style", "tv")
WEIGHTS = {"content": 0.025, "style": 1.0, "tv": 1.0}


def fake_rows(n=40, start=0):
    rows = []
    for i in range(n):
        terms = {"content": 1e6 * (1 - math.exp(-i / 10)), "style": 1e5 * math.exp(-i / 8) + 10, "tv": 3e3 + 50 * i}
        total = sum(WEIGHTS[t] * v for t, v in terms.items())
        rows.append({"size": 64, "iteration": i, "evaluations": start + i + 1, "total": total,
                     **{f"{t}_raw": v for t, v in terms.items()},
                     **{f"{t}_weighted": WEIGHTS[t] * v for t, v in terms.items()}})
    return rows


def expected_labels():
    return [label for t in TERMS for label in (f"{t} × {WEIGHTS[t]:g}", f"{t} (raw)")] + ["total"]


def test_plot_is_a_png_with_every_curve(tmp_path):
    path = tmp_path / "loss.png"
    labels = plots.save_loss_plot(fake_rows(), TERMS, WEIGHTS, str(path))
    assert labels == expected_labels()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == (plots.FIGSIZE[0] * plots.DPI, plots.FIGSIZE[1] * plots.DPI) == (800, 500)
        pixels = np.asarray(img.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # curves, not a blank canvas
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]  # no temporary file left beside it


def test_non_positive_and_missing_values_are_masked(tmp_path):
    """The content term starts at 0, tv is switched off (0 throughout), one total is NaN and one None."""
    rows = fake_rows()
    for row in rows:
        row["tv_raw"] = row["tv_weighted"] = 0.0
    rows[3]["total"], rows[4]["total"], rows[5]["style_raw"] = float("nan"), None, -1.0
    labels = plots.save_loss_plot(rows, TERMS, WEIGHTS, str(tmp_path / "loss.png"))
    assert labels == expected_labels()
    with Image.open(tmp_path / "loss.png") as img:
        assert img.size == (800, 500)


def test_nothing_positive_at_all_still_plots(tmp_path):
    rows = [{"evaluations": i, "total": 0.0, **{f"{t}_{kind}": 0.0 for t in TERMS for kind in ("raw", "weighted")}}
            for i in range(5)]
    assert plots.save_loss_plot(rows, TERMS, WEIGHTS, str(tmp_path / "loss.png")) == expected_labels()
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_evaluations_count_on_across_scales():
    rows = fake_rows(10) + fake_rows(5)  # a second scale starts counting again from 1
    x, starts = plots._running_evaluations(rows)
    np.testing.assert_array_equal(x, np.r_[1:11, 11:16])
    assert starts == [10]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        plots.save_loss_plot(fake_rows(), TERMS, WEIGHTS, str(tmp_path / "missing_dir" / "loss.png"))
    assert list(tmp_path.iterdir()) == []
