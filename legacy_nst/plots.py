"""The loss curves of a run as a PNG: every term raw and weighted, and the total, on a log scale."""
import numpy as np

from .atomic import atomic_path

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
