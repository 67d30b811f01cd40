"""The loss curves of a run as a PNG: every term raw and weighted, and the total, on a log scale."""
import numpy as np

from ..atomic import atomic_path

FIGSIZE = (8.0, 5.0)  # inches; at DPI the PNG is 800 x 500 pixels
DPI = 100


def _floats(values):
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _positive(values):
    """Non-positive and non-finite values masked as NaN: a log axis cannot show them, and matplotlib leaves
    a gap at a NaN instead of failing."""
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _running_evaluations(rows):
    """The x axis, and where a new scale starts: a multi-scale run counts evaluations from 0 again at each
    scale, so each later scale is shifted to go on from the last."""
    xs, starts, offset, previous = [], [], 0, None
    for i, row in enumerate(rows):
        x = row["evaluations"]
        if previous is not None and x < previous:
            offset += previous
            starts.append(i)
        xs.append(offset + x)
        previous = x
    return np.array(xs, np.float64), starts


def loss_plot(rows, term_names, weights, title="Loss per evaluation"):
    """(writer, legend labels): writer(path) draws the loss plot of a run's history `rows` as a PNG.

    rows: the run's per-evaluation dicts ('evaluations', 'total', '<term>_raw', '<term>_weighted');
    weights: {term: weight} for the legend. Each term is drawn raw (dashed) and as weighted into the total
    (solid, the row's own value, so seed 002's adaptive factors show) in one colour, the total solid black.
    matplotlib is imported here, not at package import (it costs about a second), and used through its
    object API with the Agg canvas, so no pyplot state or display is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x, starts = _running_evaluations(rows)

    def curve(values):  # a gap between scales: their losses are of different images
        return np.insert(_positive(values), starts, np.nan)

    for start in starts:
        ax.axvline(x[start] - 0.5, color="grey", linestyle=":", linewidth=1)
    x = np.insert(x, starts, np.nan)
    for i, term in enumerate(term_names):
        colour = f"C{i}"
        ax.plot(x, curve(_floats(row.get(f"{term}_weighted") for row in rows)), color=colour,
                label=f"{term} × {weights[term]:g}")
        ax.plot(x, curve(_floats(row.get(f"{term}_raw") for row in rows)), color=colour, linestyle="--",
                label=f"{term} (raw)")
    ax.plot(x, curve(_floats(row.get("total") for row in rows)), color="black", linewidth=2, label="total")
    ax.set_yscale("log")  # after plotting: nothing positive at all leaves matplotlib's default limits
    ax.set_xlabel("evaluations")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    legend = ax.legend(loc="best", fontsize="small")
    return (lambda path: fig.savefig(path, format="png")), [text.get_text() for text in legend.get_texts()]


def save_loss_plot(rows, term_names, weights, path, title="Loss per evaluation"):
    """The loss plot written to `path` atomically; returns the legend labels."""
    writer, labels = loss_plot(rows, term_names, weights, title)
    with atomic_path(path) as tmp:
        writer(tmp)
    return labels


def comparison_figure(panels, difference, difference_label, tile_height=256):
    """One row of labelled images (label, RGB 0..255) and a signed difference map with its colour bar, as an
    RGB uint8 array about `tile_height` px high per image.

    Each panel is as wide as its image's aspect ratio asks (no padding to the widest), the difference on
    matplotlib's "RdBu_r" (a diverging map: white where the images agree, red where the first is lighter,
    blue where darker), its limits symmetric at the 99th percentile of |difference| so one outlier does
    not wash the map out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ratios = [image.shape[1] / image.shape[0] for _, image in panels] + [difference.shape[1] / difference.shape[0]]
    title_px, bar_px = 40, 70  # the labels above the images, the colour bar and its ticks beside the last one
    width_px = sum(r * tile_height for r in ratios) + 6 * (len(ratios) + 1) + bar_px
    fig = Figure(figsize=(width_px / DPI, (tile_height + title_px + 12) / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(ratios), gridspec_kw={"width_ratios": ratios, "wspace": 0.03, "left": 0.005,
                                                     "right": 1 - bar_px / width_px, "top": tile_height / (
                                                         tile_height + title_px + 12) + 0.01, "bottom": 0.01})
    fontsize = 11 if tile_height >= 160 else 8
    for ax, (label, image) in zip(axes, panels):
        ax.imshow(np.clip(image, 0, 255).astype(np.uint8), interpolation="lanczos")
        h, w = image.shape[:2]
        ax.set_title(f"{label}\n{w}×{h} px", fontsize=fontsize)
        ax.set_axis_off()
    limit = max(1.0, float(np.percentile(np.abs(difference), 99)))
    shown = axes[-1].imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    axes[-1].set_title(difference_label, fontsize=fontsize)
    axes[-1].set_axis_off()
    bar = fig.colorbar(shown, ax=axes[-1], fraction=0.08, pad=0.02)
    bar.ax.tick_params(labelsize=fontsize - 1)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
