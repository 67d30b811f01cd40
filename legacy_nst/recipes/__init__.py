"""The sources' algorithms as data: the `Recipe` record (recipe.py) and one record per source (sources.py)."""
from .recipe import (CONV1_LAYERS, DESCENT_NORMS, INITS, MASK_MODES, NOISES, NOTE_FIELDS, OPTIMIZERS, QUIRK_FIELDS,
                     RESULT_IMAGES, SAVE_CASTS, SECTIONS, ContentForm, GramNorm, Recipe, StyleForm, StyleNorm, TVForm,
                     content_blend_weights, corrected, exponent_weights, field_types, override, parse_field, suggest,
                     term_names, term_weights)
from .sources import DEFAULT_RECIPE, RECIPES, get

__all__ = ["CONV1_LAYERS", "ContentForm", "DEFAULT_RECIPE", "DESCENT_NORMS", "GramNorm", "INITS",
           "MASK_MODES", "NOISES", "NOTE_FIELDS", "OPTIMIZERS", "QUIRK_FIELDS", "RECIPES", "RESULT_IMAGES", "Recipe",
           "SAVE_CASTS", "SECTIONS", "StyleForm", "StyleNorm", "TVForm", "content_blend_weights", "corrected", "exponent_weights",
           "field_types", "get", "override", "parse_field", "suggest", "term_names", "term_weights"]
