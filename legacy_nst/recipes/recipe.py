"""Each source's algorithm as one frozen record: every number and choice, and a note on its quirks.

The engine is generic; a recipe only picks named forms (the enums below; engine/terms.py computes them) and
numbers, so two recipes can be diffed field by field (`legacy-nst --show-recipe NAME`). A recipe holds the
algorithm only: how often to print or save is the job's output setting (job.py), so changing it never changes
a recipe or blocks a resume.
Fields are parsed from text by their type annotations (`parse_field`), so the CLI's `--set FIELD=VALUE`
and a jobs file accept every field without a table of names.
"""
import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, fields
from enum import StrEnum

from .. import images
from ..errors import UserError
from ..vgg import architecture

CONV1_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


# The forms of the loss terms (engine/terms.py defines what each one computes). A checked recipe holds these
# members, so an unknown form is refused when the recipe is checked and never reaches the engine.
class GramNorm(StrEnum):
    """The divisor of a Gram's raw Σ_p f_p f_pᵀ."""

    RAW = "raw"
    POSITIONS = "positions"  # H·W (seed 000)
    ELEMENTS = "elements"  # C·H·W (jcjohnson)


class ContentForm(StrEnum):
    """How a content layer reduces its (F − P)²."""

    MEAN = "mean"
    HALF_SUM = "half-sum"
    SUM = "sum"


class StyleForm(StrEnum):
    """How a style layer reduces its (G − A)²."""

    MEAN = "mean"
    SUM = "sum"


class StyleNorm(StrEnum):
    """The constant before each style layer's reduced (G − A)²."""

    NONE = "none"
    LAYER = "layer"  # 1/(4N²M²), the paper
    IMAGE = "image"  # 1/(4·3²·(H·W)²) of the image (seeds 003, 004)


class TVForm(StrEnum):
    """The total-variation term; none: the objective has no such term."""

    NONE = "none"
    KERAS = "keras"
    L2 = "l2"
    DENOISE = "denoise"
    TORCH = "torch"


FORM_FIELDS = {"content_form": ContentForm, "gram_norm": GramNorm, "style_form": StyleForm,
               "style_norm": StyleNorm, "tv_form": TVForm}
OPTIMIZERS = ("lbfgs", "adam", "descent", "torch-lbfgs")
DESCENT_NORMS = ("std", "rms")
INITS = ("content", "noise", "style")
SAVE_CASTS = ("round", "truncate", "unit-truncate")
MASK_MODES = ("simple", "inside")
NOISES = ("uniform", "uniform+128", "gaussian")
RESULT_IMAGES = ("best", "last", "last-measured")
NOTE_FIELDS = ("name", "source", "quirks")


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str
    quirks: str
    # network and images
    network: str = "vgg19"
    pooling: str = "max"
    size: int | None = 512  # meaning set by size_mode; None keeps the image's own size
    size_mode: str = "long-side"  # long-side | height | square | native | short-side
    style_sizing: str = "own"  # own: the style is sized like the content's rule; match-content: same H, W
    resample: str = "lanczos"
    # layers (per-layer weights: empty means 1/len)
    content_layers: tuple[str, ...] = ("block5_conv2",)
    content_layer_weights: tuple[float, ...] = ()
    style_layers: tuple[str, ...] = CONV1_LAYERS
    style_layer_weights: tuple[float, ...] = ()
    # loss forms and weights
    content_form: ContentForm = ContentForm.MEAN
    gram_norm: GramNorm = GramNorm.RAW  # divisor of FᵀF: raw | positions (H·W) | elements (C·H·W)
    style_form: StyleForm = StyleForm.MEAN
    style_norm: StyleNorm = StyleNorm.NONE  # factor before each layer's Σ(G − A)²: none | layer 1/(4N²M²) | image
    tv_form: TVForm = TVForm.NONE
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    style_weight_twice: bool = False
    adaptive_weights: bool = False  # seed 002: each term × 1/(its loss + 1e-10)
    normalize_gradients: bool = False  # jcjohnson's: each layer term's gradient ÷ its L1 norm, × its weight
    mask_mode: str = "simple"  # style masks carried down to each layer: simple (2×2 means) | inside (eroded)
    # optimiser: `iterations` counts loss+gradient evaluations (an Adam or descent step is one evaluation)
    optimizer: str = "lbfgs"
    iterations: int = 200
    lbfgs_maxfun: int = 0  # evaluations per fmin_l_bfgs_b call, restarted until `iterations`; 0: one call
    lbfgs_bounds: bool = False
    lbfgs_stop_early: bool = True  # scipy's default tolerances; False runs every evaluation
    lbfgs_memory: int = 10  # scipy's m: corrections kept (jcjohnson's -lbfgs_num_correction)
    learning_rate: float = 1.0  # Adam's learning rate or descent's step
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    descent_norm: str = "std"  # normalised descent: g / (std(g) + eps) or g / (rms(g) + eps)
    descent_eps: float = 1e-8
    clip: bool = False
    # start and result
    init: str = "content"
    noise: str = "uniform"  # uniform: U[0,1) in preprocessed space; uniform+128: seed 002; gaussian: N(0, 1e-3)
    init_noise_blend: float = 0.0  # anish's --initial-noiseblend: (1 − b) · start + b · noise (σ = 0.1 std)
    # the lowest-loss image, the optimiser's last (after its final update), or the image the last evaluation
    # measured (jcjohnson saves inside feval, before optim.lbfgs's final, unevaluated update)
    result_image: str = "last"
    high_res_size: int = 0  # the authors' notebook: a second pass at this size from the upsampled result; 0: none
    high_res_iterations: int = 0  # evaluations of that pass
    coarse_to_fine: bool = False  # without a schedule: job.auto_levels; off everywhere (job.auto_levels says why)
    # the sources' quirks (docs/quirks.md): each default here is the corrected behaviour, each source recipe
    # sets its own code's; `corrected(recipe)` switches them all back (CLI --corrected)
    best_image_after_update: bool = False  # seed 000: the kept image is the one after the best step's update
    grid_after_update: bool = False  # seed 000: grid tiles are the images after step i's update
    grid_float_interval: bool = False  # seed 000: a tile when i % (iterations / tiles) == 0, a float
    adaptive_weights_lag: bool = False  # seed 002: step i's gradient sees the factors of step i − 1 (1e-10 first)
    style_norm_size: tuple[int, ...] = ()  # seed 004: style ÷ (3·H·W)² with this literal (H, W), not the photo's
    save_cast: str = "round"  # round, or clip + astype('uint8') (truncate), or seed 004's clip, /255, ·255, astype
    deprocess_channel_slip: bool = False  # seed 004: means added after the BGR→RGB flip: R −19.74, B +19.74
    pixel_scale: float = 255.0  # 0..1 images × this before the mean is subtracted; jcjohnson's preprocess: 256
    tv_in_loss: bool = True  # jcjohnson: TVLoss has a gradient but no loss; the printed total leaves it out
    lbfgs_call_overshoot: bool = False  # seed 003: fmin_l_bfgs_b(maxfun=N) runs to scipy's stop, N + 1 or more

    def check(self):
        """A validated copy with layer names in Keras form; every problem is a UserError naming the field."""

        choices = {"network": tuple(architecture.BLOCK_SIZES), "pooling": architecture.POOLINGS,
                   "size_mode": images.SIZE_MODES, "style_sizing": ("own", "match-content"),
                   "resample": tuple(images.RESAMPLERS), **{name: tuple(form) for name, form in FORM_FIELDS.items()},
                   "optimizer": OPTIMIZERS, "descent_norm": DESCENT_NORMS,
                   "init": INITS, "noise": NOISES, "result_image": RESULT_IMAGES,
                   "save_cast": SAVE_CASTS, "mask_mode": MASK_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} {getattr(self, name)!r} is not one of: {', '.join(allowed)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{f.name} must be a finite number, got {value}")
        for name in ("iterations", "lbfgs_memory"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lbfgs_maxfun < 0:
            raise UserError(f"lbfgs_maxfun must be 0 (one call) or positive, got {self.lbfgs_maxfun}")
        if self.pixel_scale <= 0:
            raise UserError(f"pixel_scale must be positive (255: the pixels as they are), got {self.pixel_scale}")
        if (self.high_res_size > 0) != (self.high_res_iterations > 0) or min(self.high_res_size,
                                                                            self.high_res_iterations) < 0:
            raise UserError(f"high_res_size {self.high_res_size} and high_res_iterations {self.high_res_iterations}: "
                            "give both (a second pass at that size) or set both to 0")
        if self.size is not None and self.size < 1:
            raise UserError(f"size must be a positive number of pixels, got {self.size}")
        for name in ("content_weight", "style_weight", "tv_weight", "learning_rate", "epsilon", "descent_eps"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.tv_weight > 0 and self.tv_form == TVForm.NONE:
            raise UserError(f"tv_weight {self.tv_weight:g} would do nothing: recipe {self.name} has no total-"
                            "variation term; also set tv_form=l2 (jcjohnson's), keras or denoise")
        if self.style_norm_size and (len(self.style_norm_size) != 2 or min(self.style_norm_size) < 1):
            raise UserError(f"style_norm_size must be H,W (or empty for the photo's), got {self.style_norm_size}")
        if not 0 <= self.init_noise_blend <= 1:
            raise UserError(f"init_noise_blend must be between 0 and 1, got {self.init_noise_blend}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 0 and below 1, got {getattr(self, name)}")
        for kind in ("content", "style"):
            layers = getattr(self, f"{kind}_layers")
            if not layers:
                raise UserError(f"{kind}_layers is empty; give at least one layer")
            weights = getattr(self, f"{kind}_layer_weights")
            if weights and len(weights) != len(layers):
                raise UserError(f"{kind}_layer_weights has {len(weights)} values for {len(layers)} layers; "
                                f"give one per layer, or none for 1/{len(layers)} each")
            if any(not math.isfinite(w) or w < 0 for w in weights):
                raise UserError(f"{kind}_layer_weights must be finite and non-negative, got {weights}")
        return dataclasses.replace(
            self, **{name: form(getattr(self, name)) for name, form in FORM_FIELDS.items()},
            content_layers=tuple(architecture.canonical_layer(self.network, n) for n in self.content_layers),
            style_layers=tuple(architecture.canonical_layer(self.network, n) for n in self.style_layers))

    @property
    def layers(self):
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))

    @property
    def restarts(self):
        """How many fmin_l_bfgs_b calls the L-BFGS budget is split into (seed 003's outer loop)."""
        if self.optimizer != "lbfgs" or not self.lbfgs_maxfun:
            return 1
        return -(-self.iterations // self.lbfgs_maxfun)

    def algorithm(self):
        """Every field that changes the numbers a run produces (the notes left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NOTE_FIELDS}




def suggest(name, choices):
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]}?" if close else ""


QUIRK_FIELDS = ("best_image_after_update", "grid_after_update", "grid_float_interval", "adaptive_weights_lag",
                "style_norm_size", "save_cast", "deprocess_channel_slip", "pixel_scale", "tv_in_loss",
                "lbfgs_call_overshoot")
# The recipe in sections, as --show-recipe prints it; every field is in exactly one (tests/recipes).
SECTIONS = {
    "notes": NOTE_FIELDS,
    "network and images": ("network", "pooling", "size", "size_mode", "style_sizing", "resample"),
    "layers": ("content_layers", "content_layer_weights", "style_layers", "style_layer_weights"),
    "terms": ("content_form", "gram_norm", "style_form", "style_norm", "tv_form", "content_weight", "style_weight",
              "tv_weight", "style_weight_twice", "adaptive_weights", "normalize_gradients", "mask_mode"),
    "optimiser": ("optimizer", "iterations", "lbfgs_maxfun", "lbfgs_bounds", "lbfgs_stop_early", "lbfgs_memory",
                  "learning_rate", "beta1", "beta2", "epsilon", "descent_norm", "descent_eps", "clip"),
    "start and result": ("init", "noise", "init_noise_blend", "result_image", "high_res_size", "high_res_iterations",
                         "coarse_to_fine"),
    "quirks": QUIRK_FIELDS,  # each default is the corrected behaviour; corrected() sets them all so
}


def corrected(recipe):
    """The recipe with every source quirk switched to the clean behaviour (the field defaults)."""
    clean = {f.name: f.default for f in fields(Recipe) if f.name in QUIRK_FIELDS}
    return dataclasses.replace(recipe, **clean)



@functools.cache  # read for every key of every job: uncached, 4 ms a job of a large jobs file (issue 20.10)
def field_types():
    """{field: annotated type} of every algorithm field (one dict, shared: read it, never change it)."""
    hints = typing.get_type_hints(Recipe)
    return {f.name: hints[f.name] for f in fields(Recipe) if f.name not in NOTE_FIELDS}


def _parse_scalar(kind, text):
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError
        return text.lower() in ("true", "1", "yes")
    return kind(text)


def _describe(kind):
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return f"one of {', '.join(kind)}"
    if typing.get_origin(kind) is tuple:
        return f"a list of {typing.get_args(kind)[0].__name__}"
    if typing.get_origin(kind) is typing.Union or isinstance(kind, type(int | None)):
        return " or ".join("none" if a is type(None) else a.__name__ for a in typing.get_args(kind))
    return "true or false" if kind is bool else kind.__name__


def parse_field(name, text):
    """Convert text (CLI `--set`, a jobs file) to the type the field is annotated with."""
    types = field_types()
    if name not in types:
        raise UserError(f"unknown recipe field {name!r}{suggest(name, types)} (see --show-recipe NAME)")
    kind = types[name]
    try:
        if typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            return tuple(_parse_scalar(item, t) for t in text.replace(",", " ").split())
        args = typing.get_args(kind)
        if type(None) in args:  # int | None
            return None if text.strip().lower() == "none" else _parse_scalar(args[0], text)
        return _parse_scalar(kind, text)
    except ValueError:
        raise UserError(f"{name}={text!r}: expected {_describe(kind)}") from None


def term_names(recipe):
    """The terms a recipe's objective has, in order: content, style, and tv when it has a TV form."""
    return ("content", "style") + (("tv",) if recipe.tv_form != TVForm.NONE else ())


def term_weights(recipe):
    """{term: weight} as the total applies them (seed 003 multiplies the style sum by its weight twice)."""
    style_weight = recipe.style_weight**2 if recipe.style_weight_twice else recipe.style_weight
    weights = {"content": recipe.content_weight, "style": style_weight, "tv": recipe.tv_weight}
    return {name: weights[name] for name in term_names(recipe)}


def content_blend_weights(beta):
    """anish's --content-weight-blend β: the first content layer weighs β, the second 1 − β."""
    if not 0 <= beta <= 1:
        raise UserError(f"--content-weight-blend {beta}: must be between 0 and 1")
    return (beta, 1.0 - beta)


def exponent_weights(exponent, count):
    """anish's --style-layer-weight-exp e: layer i weighs e^i, normalised to sum 1 (1: equal weights)."""
    if exponent <= 0:
        raise UserError(f"--style-layer-weight-exp {exponent}: must be positive")
    raw = [exponent**i for i in range(count)]
    return tuple(w / sum(raw) for w in raw)


def override(recipe, **changes):
    """The recipe with `changes`, checked. Changing a layer list without its weights resets the weights (they
    were for the recipe's own layers): equal weights stay equal at the same value, others become 1/len, so
    `--style-layers A B` just works."""
    unknown = [name for name in changes if name not in field_types()]
    if unknown:
        raise UserError(f"unknown recipe field {unknown[0]!r}{suggest(unknown[0], field_types())}")
    for kind in ("content", "style"):
        given = getattr(recipe, f"{kind}_layer_weights")
        if f"{kind}_layers" in changes and f"{kind}_layer_weights" not in changes:
            uniform = len(set(given)) == 1
            changes[f"{kind}_layer_weights"] = (given[:1] * len(changes[f"{kind}_layers"])) if uniform else ()
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return dataclasses.replace(recipe, **changes).check()
