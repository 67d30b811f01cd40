"""Each source's algorithm as one frozen record: every number and choice, and a note on its quirks.

The engine is generic; a recipe only picks named forms (see losses.py) and numbers, so two recipes can be
diffed field by field (`legacy-nst --show-recipe NAME`). A recipe holds the algorithm only: how often to
print or save is the job's output setting (job.py), so changing it never changes a recipe or blocks a resume.
Fields are parsed from text by their type annotations (`parse_field`), so the CLI's `--set FIELD=VALUE`
and a jobs file accept every field without a table of names.
"""
import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, fields

from . import architecture, images
from .errors import UserError

CONV1_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# The named forms a recipe picks from (losses.py and optimisers.py implement them).
GRAM_NORMS = ("raw", "positions", "elements")
CONTENT_FORMS = ("mean", "half-sum", "sum")
STYLE_FORMS = ("mean", "sum")
STYLE_NORMS = ("none", "layer", "image")
TV_FORMS = ("none", "keras", "l2", "denoise", "torch")
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
    content_form: str = "mean"
    gram_norm: str = "raw"  # divisor of FᵀF: raw | positions (H·W) | elements (C·H·W)
    style_form: str = "mean"
    style_norm: str = "none"  # factor before each layer's Σ(G − A)²: none | layer 1/(4N²M²) | image
    tv_form: str = "none"
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
                   "resample": tuple(images.RESAMPLERS), "content_form": CONTENT_FORMS,
                   "gram_norm": GRAM_NORMS, "style_form": STYLE_FORMS,
                   "style_norm": STYLE_NORMS, "tv_form": TV_FORMS,
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
        if self.tv_weight > 0 and self.tv_form == "none":
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
            self,
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


RECIPES = {r.name: r for r in (
    Recipe(
        name="preview",
        source="legacy_nst's own fast preview: VGG19 blocks 1-3 only (runs on the partial weights)",
        quirks="Normalised Grams (÷ C·H·W, as jcjohnson/neural-style) so the layers weigh alike; "
               "L-BFGS-B with pixel bounds never leaves 0..255, so no clip or TV is needed at this size.",
        size=320, content_layers=("block3_conv2",), style_layers=CONV1_LAYERS[:3],
        content_form="mean", gram_norm="elements", style_form="sum", style_layer_weights=(1.0, 1.0, 1.0),
        content_weight=1.0, style_weight=0.1, optimizer="lbfgs", iterations=120, lbfgs_maxfun=0,
        lbfgs_bounds=True, lbfgs_stop_early=False, init="content", result_image="best"),
    Recipe(
        name="tf-eager-blog",
        source="seeds 000/001: the TensorFlow blog post 'Neural Style Transfer with eager execution' "
               "(Vietnamese and Russian retellings)",
        quirks="Gram ÷ H·W; style and content are reduce_mean. Adam in the preprocessed space is the same "
               "update on RGB pixels (a channel flip and a shift). The clip to [−mean, 255 − mean] is "
               "commented out in seed 000 (set clip=true for the original post's). Quirks of the post's code: "
               "`best_img` is read after `opt.apply_gradients`, so the kept image is the one after the best "
               "step's update (best_image_after_update); the 2 × 5 grid shows the image after the update of "
               "i = 0, 100, ..., 900 (grid_after_update), chosen by `i % display_interval == 0` with "
               "`display_interval = num_iterations / (num_rows * num_cols)` a float (grid_float_interval); "
               "`deprocess_img` casts with astype('uint8'), truncating (save_cast). Seed 001 carries no code.",
        size=512, content_layers=("block5_conv2",), content_form="mean", gram_norm="positions",
        style_form="mean", content_weight=1e3, style_weight=1e-2, optimizer="adam", iterations=1000,
        learning_rate=5.0, beta1=0.99, epsilon=1e-1, init="content", result_image="best",
        best_image_after_update=True, grid_after_update=True, grid_float_interval=True, save_cast="truncate"),
    Recipe(
        name="hvass-vgg16",
        source="seed 002: Vietnamese TF1 post after Hvass-Labs tutorial 15 (VGG16, pure graph)",
        quirks="Layer ids index the 13 conv layers (content [4] = block3_conv1, style range(13)). Gram is "
               "unnormalised, each term a reduce_mean. Adaptive normalisation: each term × 1/(L + 1e-10). "
               "Quirks of the post's code: the adj variables are assigned in the same session.run as the "
               "gradient, and TF1 gives the gradient the factors of the PREVIOUS run: step 0 uses their initial "
               "1e-10 for all three terms, each later step factors one step old (adaptive_weights_lag); the "
               "result is generate_img after all 60 updates and the last clip (as every `last` result here); "
               "the author's plot_image casts with astype(np.uint8) (save_cast). Weights of the example call "
               "(2.0, 9.0, 0.4; function defaults 1.5, 10.0, 0.3). Images cv2.resize'd to 224 × 224.",
        network="vgg16", size=224, size_mode="square", resample="cv2-linear",
        content_layers=("block3_conv1",), style_layers=tuple(str(i) for i in range(13)),
        content_form="mean", gram_norm="raw", style_form="mean", tv_form="denoise",
        content_weight=2.0, style_weight=9.0, tv_weight=0.4, adaptive_weights=True, optimizer="descent",
        iterations=60, learning_rate=10.0, descent_norm="std", descent_eps=1e-8, clip=True, init="noise",
        noise="uniform+128", adaptive_weights_lag=True, save_cast="truncate"),
    Recipe(
        name="keras-lbfgs",
        source="seed 003: Thai post of the Keras example neural_style_transfer.py (Mauro Comi's 2018 article)",
        quirks="Content and style resized to rows = 400, cols = width · 400 / height of the content with "
               "Keras load_img's default (nearest). The seed runs content, style and the image as one "
               "batch of 3; targets are the same numbers computed once. Style per layer ÷ (4 · 3² · (rows · "
               "cols)²): channels = 3 and the IMAGE size hard-coded, not the layer's; the layer sum is "
               "multiplied by style_weight again (style_weight_twice: 2² here). TV on the cropped (rows−1) × "
               "(cols−1) grid, ^1.25. The post's code uses weights and a count it does not show; the "
               "article's linked code (maurock/neural_transfer_style main.py) sets content 5, style 2, TV 1, "
               "20 outer iterations of fmin_l_bfgs_b(maxfun=15): iterations 300 = 20 restarts × 15, but scipy "
               "ends each call at the first iteration past maxfun, so a restart runs 16 or more and the "
               "source's 20 calls about 320 (lbfgs_call_overshoot; --corrected: exactly 15 each). "
               "deprocess_image casts with astype('uint8') (save_cast).",
        size=400, size_mode="height", style_sizing="match-content", resample="nearest",
        content_layers=("block5_conv2",), content_form="sum", gram_norm="raw", style_form="sum",
        style_norm="image", tv_form="keras", content_weight=5.0, style_weight=2.0, tv_weight=1.0,
        style_weight_twice=True, optimizer="lbfgs", iterations=300, lbfgs_maxfun=15, init="content",
        save_cast="truncate", lbfgs_call_overshoot=True),
    Recipe(
        name="keras-gd-noise",
        source="seed 004: Spanish post, Keras VGG19, normalised gradient descent from white noise",
        quirks="Images at their own size. Content is block1_conv1, ½Σ(F − P)². Style layers block5..2_conv1 "
               "weighted 1/(i + 2) (the post's final loop is not valid Python; this is its stated intent), "
               "0.25 · Σ(G − A)² / (3 · 422 · 750)²: the post divides by its own photo's size whatever the "
               "photo (style_norm_size). Gradient ÷ its RMS + 1e-5, step 0.01, no clip; init U[0, 1) in "
               "preprocessed space; the result is the image after all 1500 updates. Quirks of the post's code: "
               "deprocess_image flips BGR→RGB before adding the means, so R gets "
               "−19.74 and B +19.74 (deprocess_channel_slip); then (final / 255 · 255).astype('uint8') "
               "(save_cast unit-truncate).",
        size=None, size_mode="native", content_layers=("block1_conv1",),
        style_layers=tuple(reversed(CONV1_LAYERS[1:])), style_layer_weights=(1 / 2, 1 / 3, 1 / 4, 1 / 5),
        content_form="half-sum", gram_norm="raw", style_form="sum", style_norm="image",
        content_weight=1.0, style_weight=1e2, optimizer="descent", iterations=1500, learning_rate=0.01,
        descent_norm="rms", descent_eps=1e-5, clip=False, init="noise", noise="uniform",
        style_norm_size=(422, 750), deprocess_channel_slip=True,
        save_cast="unit-truncate"),
    Recipe(
        name="gatys2016",
        source="Gatys, Ecker, Bethge: Image Style Transfer Using CNNs (CVPR 2016)",
        quirks="Average pooling, content conv4_2 ½Σ(F − P)², style conv1_1..conv5_1 at 1/5 each with "
               "E = Σ(G − A)² / (4N²M²), α/β = 1e-3 (Fig. 3B). The paper's VGG was rescaled so every "
               "filter's mean ImageNet activation is 1; the Keras weights are not: Job(normalise_on=IMAGES) "
               "(figure --normalise-on) rescales them so α/β means the paper's, without it the same α/β "
               "weighs style differently. Iteration count not given: 1000 L-BFGS evaluations "
               "as jcjohnson/neural-style; white-noise init N(0, 1e-3) around the mean, as jcjohnson.",
        pooling="avg", size=512, content_layers=("block4_conv2",), content_form="half-sum",
        gram_norm="raw", style_form="sum", style_norm="layer", content_weight=1.0, style_weight=1e3,
        optimizer="lbfgs", iterations=1000, lbfgs_stop_early=False, init="noise", noise="gaussian"),
    Recipe(
        name="jcjohnson",
        source="jcjohnson/neural-style: neural_style.lua with its defaults (Torch7, optim.lbfgs)",
        quirks="Content relu4_2, style relu1_1..relu5_1, one loss module each: ContentLoss strength 5 · "
               "MSECriterion (the mean over elements), StyleLoss strength 100 · MSE of Grams ÷ C·H·W (every "
               "layer at the full strength, no 1/5), TVLoss 1e-3 with its hand-written backward (the gradient "
               "of ½Σ(dx² + dy²) on the (H−1) × (W−1) grid: tv_form torch). -init random: randn · 0.001 in "
               "the preprocessed space; image_size 512 on the long side, bilinear (Torch's image.scale; "
               "Pillow's filter here). 1000 iterations of optim.lbfgs with nCorrection 100 (-lbfgs_num_"
               "correction 0 leaves optim's default), no line search (learningRate 1, the first step "
               "min(1, 1/‖g‖₁)), tolFun = tolX = −1: optimizer torch-lbfgs. Quirks of its code: preprocess "
               "multiplies the 0..1 image by 256, not 255 (pixel_scale 256; deprocess divides by 256 again); "
               "the loss it prints, and hands optim.lbfgs, sums the content and style modules only: TVLoss has "
               "no loss value (tv_in_loss false; without a line search the value never steers a step); the "
               "image is saved inside feval at call 1000, before optim.lbfgs's final update, which is never "
               "evaluated (result_image last-measured); image.save saturates to 0..1 and × 255 (save_cast "
               "truncate: the C conversion to bytes, as read from the image package, not run here).",
        size=512, size_mode="long-side", resample="bilinear",
        content_layers=("block4_conv2",), content_layer_weights=(1.0,),
        style_layers=CONV1_LAYERS, style_layer_weights=(1.0,) * 5,
        content_form="mean", gram_norm="elements", style_form="mean", tv_form="torch",
        content_weight=5.0, style_weight=100.0, tv_weight=1e-3, optimizer="torch-lbfgs", iterations=1000,
        lbfgs_memory=100, learning_rate=1.0, init="noise", noise="gaussian", result_image="last-measured",
        pixel_scale=256.0, tv_in_loss=False, save_cast="truncate"),
    Recipe(
        name="gatys-code",
        source="Gatys' own code: leongatys/PytorchNeuralStyleTransfer, NeuralStyleTransfer.ipynb (PyTorch)",
        quirks="Style r11 r21 r31 r41 r51 with weights 1e3/n² (n = 64, 128, 256, 512, 512 channels), each "
               "nn.MSELoss (mean) of GramMatrix ÷ h·w; content r42 MSELoss × 1. Its vgg_conv.pth is the "
               "authors' unit-mean VGG19 (normalised on ImageNet): run it with Job(normalise_on=IMAGES) / "
               "--normalise-on, otherwise the weights balance differently (docs/quirks.md). prep: "
               "transforms.Scale(512), the SHORTER edge, bilinear; 0..1 × 255 in BGR minus the mean. From "
               "the content; torch.optim.LBFGS() defaults (lr 1, max_iter 20, history 100, no line search) "
               "in `while n_iter[0] <= max_iter: optimizer.step(closure)` with max_iter 500: 26 calls of 20 "
               "evaluations = 520 (the history carries over between calls, so it is one fixed-step L-BFGS "
               "run: optimizer torch-lbfgs), the result after the last update, postp clamps to 0..1 and "
               "ToPILImage truncates (save_cast). Then its high-resolution pass (Gatys et al. 2017): the "
               "result upsampled to 800 px as the start, targets at 800 px, `while n_iter[0] <= 200`: 220 "
               "evaluations. Not modelled: PyTorch's tolerance_grad 1e-5 / tolerance_change 1e-9 tests, "
               "which end a call early only when the loss stops changing at float32 precision (the loop then "
               "calls step again); the 8-bit, bilinear upsampling of the low-resolution result (here Lanczos "
               "on the float image).",
        size=512, size_mode="short-side", resample="bilinear",
        content_layers=("block4_conv2",), content_layer_weights=(1.0,),
        style_layers=CONV1_LAYERS, style_layer_weights=tuple(1e3 / n**2 for n in (64, 128, 256, 512, 512)),
        content_form="mean", gram_norm="positions", style_form="mean", content_weight=1.0, style_weight=1.0,
        optimizer="torch-lbfgs", iterations=520, lbfgs_memory=100, learning_rate=1.0, init="content",
        result_image="last", save_cast="truncate", high_res_size=800, high_res_iterations=220),
)}
DEFAULT_RECIPE = "keras-lbfgs"


def suggest(name, choices):
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]}?" if close else ""


QUIRK_FIELDS = ("best_image_after_update", "grid_after_update", "grid_float_interval", "adaptive_weights_lag",
                "style_norm_size", "save_cast", "deprocess_channel_slip", "pixel_scale", "tv_in_loss",
                "lbfgs_call_overshoot")


def corrected(recipe):
    """The recipe with every source quirk switched to the clean behaviour (the field defaults)."""
    clean = {f.name: f.default for f in fields(Recipe) if f.name in QUIRK_FIELDS}
    return dataclasses.replace(recipe, **clean)


def get(name):
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}{suggest(name, RECIPES)} (see --list-recipes)")
    return RECIPES[name]


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
    return ("content", "style") + (("tv",) if recipe.tv_form != "none" else ())


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
