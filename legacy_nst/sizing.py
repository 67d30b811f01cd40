"""How big each image is when a recipe runs on it: its source's sizing rule, checked before any heavy work."""
from . import images
from .architecture import min_input_side
from .errors import UserError


def sized_shapes(recipe, content_shape, style_shapes):
    """(content (H, W), [style (H, W)]) after the recipe's sizing rule."""
    shape = images.target_shape(content_shape, recipe.size, recipe.size_mode)
    return shape, [shape if recipe.style_sizing == "match-content"
                   else images.target_shape(s, recipe.size, recipe.size_mode) for s in style_shapes]


def check_sizes(recipe, content_shape, style_shapes):
    """Refuse, before any heavy work, images too small for the deepest layer after sizing."""
    need = min_input_side(recipe.network, recipe.layers)
    content, styles = sized_shapes(recipe, content_shape, style_shapes)
    for what, (h, w) in [("content", content)] + [("style", s) for s in styles]:
        if min(h, w) < need:
            raise UserError(f"the {what} image is {w}×{h} px after sizing; the deepest layer needs at least "
                            f"{need} px on each side: use a larger image or --size")


def size_images(recipe, content, styles):
    """Content and styles sized by the recipe's rule; refuses images too small for the deepest layer."""
    check_sizes(recipe, content.shape, [s.shape for s in styles])
    content_shape, style_shapes = sized_shapes(recipe, content.shape, [s.shape for s in styles])
    return (images.resize(content, content_shape, recipe.resample),
            [images.resize(s, shape, recipe.resample) for s, shape in zip(styles, style_shapes)])
