"""One call for notebooks: `stylize(content, style, recipe="preview", **overrides)`.

It returns a `Stylized`: the image as a PIL image, the per-evaluation history and the Result; Jupyter shows
it inline (`_repr_png_`, and `_repr_html_`: the picture with a one-line summary; the plain-text repr is that
summary, never the history). In a Jupyter kernel the run shows its progress while it works: one display of
the current image beside the loss curve, replaced in place (IPython's display(..., display_id=True) and
.update) at most every `progress_interval` seconds and at the end, and a tqdm.auto bar (a widget where
ipywidgets is installed, text otherwise).
"""
import base64
import html
import io
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..images import to_uint8
from ..runner.events import Evaluation, LevelFinished, LevelStarted, Result
from ..runner.job import Job, Style
from ..runner.loop import run


def _png(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(repr=False)
class Stylized:
    image: Image.Image
    history: list
    result: Result

    def summary(self):
        r = self.result
        final = f", final loss {self.history[-1]['total']:.4g}" if self.history else ""
        return (f"{r.recipe.name}: {self.image.size[0]}×{self.image.size[1]} px, {len(self.history)} evaluations in "
                f"{r.seconds:.1f} s, {r.stopped}{final}")

    def __repr__(self):
        return f"<Stylized {self.summary()}>"

    def _repr_png_(self):
        return _png(self.image)

    def _repr_html_(self):
        data = base64.b64encode(self._repr_png_()).decode("ascii")
        return (f'<figure style="margin:0"><img src="data:image/png;base64,{data}" alt="stylised image">'
                f"<figcaption>{html.escape(self.summary())}</figcaption></figure>")


class _Frame:
    """What the live display shows: the current image beside the loss curve so far, and a line of text."""

    def __init__(self, image, totals, text):
        self.image, self.totals, self.text = image, totals, text

    def __repr__(self):
        return self.text

    def _repr_png_(self):
        from matplotlib.figure import Figure  # the object API: no pyplot state, no backend to choose

        figure = Figure(figsize=(8.0, 3.2), dpi=80)
        left, right = figure.subplots(1, 2)
        left.imshow(self.image)
        left.set_axis_off()
        right.semilogy(np.arange(1, len(self.totals) + 1), np.where(np.array(self.totals) > 0, self.totals, np.nan))
        right.set_xlabel("evaluation")
        right.set_ylabel("total loss")
        figure.suptitle(self.text, fontsize=9)
        out = io.BytesIO()
        figure.savefig(out, format="png")
        return out.getvalue()


class NotebookProgress:
    """on_event for run() in Jupyter: the live display and the progress bar."""

    def __init__(self, interval=2.0, cast="round", slip=False):
        self.interval, self.cast, self.slip = interval, cast, slip
        self.handle = self.bar = None
        self.totals, self.budget, self._shown = [], 0, -np.inf
        self.updates = 0  # displays replaced in place (the first one is created)

    def __call__(self, event):
        if isinstance(event, LevelStarted):
            self.budget = event.iterations
            self.bar = tqdm(total=event.iterations, unit="eval", desc=f"level {event.level + 1}/{event.levels}")
        elif isinstance(event, Evaluation):
            self.totals.append(event.total)
            if self.bar is not None:
                self.bar.update(max(0, event.evaluations - self.bar.n))
            if time.monotonic() - self._shown >= self.interval:
                self._show(event.image, f"evaluation {event.evaluations}/{self.budget}: total {event.total:.4g}")
        elif isinstance(event, LevelFinished):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self._show(event.image, f"level {event.level + 1} done: {event.evaluations} evaluations, "
                                    f"{event.seconds:.1f} s")

    def _show(self, image, text):
        from IPython.display import display

        if image is None:
            return
        self._shown = time.monotonic()
        frame = _Frame(to_uint8(image, self.cast, self.slip), list(self.totals), text)
        if self.handle is None:
            self.handle = display(frame, display_id=True)
        else:
            self.handle.update(frame)
            self.updates += 1

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def in_jupyter():
    """True inside a Jupyter kernel (not a terminal IPython, not a script)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def stylize(content, style, recipe="preview", *, weights=None, seed=0, device="auto", on_event=None,
            progress=None, progress_interval=2.0, **overrides):
    """Stylise `content` (a path or an RGB array) with one or more `style` images; nothing is written.

    `overrides` are recipe fields (size=256, style_weight=1.0, iterations=60, ...). `progress`: show the
    live display and bar (True, False, or None: only inside Jupyter), refreshed at most every
    `progress_interval` s; or a NotebookProgress of your own."""
    styles = style if isinstance(style, (list, tuple)) else [style]
    job = Job(content=content, styles=tuple(s if isinstance(s, Style) else Style(s) for s in styles),
              recipe=recipe, overrides=overrides, seed=seed, weights=weights, device=device)
    shown = in_jupyter() if progress is None else bool(progress)
    chosen = job.resolved_recipe()
    if isinstance(progress, NotebookProgress):
        live = progress
    else:
        live = NotebookProgress(progress_interval, chosen.save_cast, chosen.deprocess_channel_slip) if shown else None

    def both(event):
        if live is not None:
            live(event)
        if on_event is not None:
            on_event(event)

    try:
        result = run(job, both)
    finally:
        if live is not None:
            live.close()
    image = to_uint8(result.image, result.recipe.save_cast, result.recipe.deprocess_channel_slip)
    return Stylized(Image.fromarray(image), result.history, result)
