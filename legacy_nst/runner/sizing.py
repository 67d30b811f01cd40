"""How big each image is when a recipe runs on it: its source's sizing rule, checked before any heavy work.

A style scale other than 1 (jcjohnson's -style_scale, anish's --style-scales) sizes that style relative to
the content instead: its long side is the scale times the sized content's long side, its aspect kept."""
from .. import images
from ..errors import UserError
from ..vgg.architecture import min_input_side


def sized_shapes(recipe, content_shape, style_shapes, style_scales=None):
    """(content (H, W), [style (H, W)]) after the recipe's sizing rule and the styles' scales."""
    shape = images.target_shape(content_shape, recipe.size, recipe.size_mode)
    scales = style_scales or [1.0] * len(style_shapes)
    out = []
    for style_shape, scale in zip(style_shapes, scales):
        if scale != 1.0:
            out.append(images.target_shape(style_shape, max(1, round(scale * max(shape))), "long-side"))
        elif recipe.style_sizing == "match-content":
            out.append(shape)
        else:
            out.append(images.target_shape(style_shape, recipe.size, recipe.size_mode))
    return shape, out


def check_sizes(recipe, content_shape, style_shapes, style_scales=None):
    """Refuse, before any heavy work, images too small for the deepest layer after sizing."""
    need = min_input_side(recipe.network, recipe.layers)
    content, styles = sized_shapes(recipe, content_shape, style_shapes, style_scales)
    for i, (what, (h, w)) in enumerate([("content", content)] + [("style", s) for s in styles]):
        if min(h, w) < need:
            hint = ("a larger --style-scale" if i and style_scales and style_scales[i - 1] != 1.0
                    else "a larger image or --size")
            raise UserError(f"the {what} image is {w}×{h} px after sizing; the deepest layer needs at least "
                            f"{need} px on each side: use {hint}")


def size_images(recipe, content, styles, style_scales=None):
    """Content and styles sized by the recipe's rule; refuses images too small for the deepest layer."""
    check_sizes(recipe, content.shape, [s.shape for s in styles], style_scales)
    content_shape, style_shapes = sized_shapes(recipe, content.shape, [s.shape for s in styles], style_scales)
    return (images.resize(content, content_shape, recipe.resample),
            [images.resize(s, shape, recipe.resample) for s, shape in zip(styles, style_shapes)])
