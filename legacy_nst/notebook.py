"""One call for notebooks: `stylize(content, style, recipe="preview", **overrides)`.

It returns a `Stylized`: the image as a PIL image, the per-evaluation history and the Result; Jupyter shows
it inline (it has `_repr_png_`), so the last line of a cell is enough to see the picture.
"""
import io
from dataclasses import dataclass

from PIL import Image

from .events import Result
from .images import to_uint8
from .job import Job, Style
from .runner import run


@dataclass
class Stylized:
    image: Image.Image
    history: list
    result: Result

    def _repr_png_(self):
        out = io.BytesIO()
        self.image.save(out, format="PNG")
        return out.getvalue()


def stylize(content, style, recipe="preview", *, weights=None, seed=0, device="auto", on_event=None,
            **overrides):
    """Stylise `content` (a path or an RGB array) with one or more `style` images; nothing is written.

    `overrides` are recipe fields (size=256, style_weight=1.0, iterations=60, ...)."""
    styles = style if isinstance(style, (list, tuple)) else [style]
    job = Job(content=content, styles=tuple(s if isinstance(s, Style) else Style(s) for s in styles),
              recipe=recipe, overrides=overrides, seed=seed, weights=weights, device=device)
    result = run(job, on_event)
    image = to_uint8(result.image, result.recipe.save_cast, result.recipe.deprocess_channel_slip)
    return Stylized(Image.fromarray(image), result.history, result)
