"""The recipes: each source's algorithm as one `Recipe`, with its source and a note on its quirks."""
from .recipe import CONV1_LAYERS, Recipe, suggest
from ..errors import UserError

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
               "weighs style differently; on the whole Keras VGG19 as it ships, α/β = 1e-3 gives the paper's "
               "look at 256 px and up. The content term sums over positions and the style term does not, so "
               "a smaller --size weighs style more (figure keeps the 512 px balance: α × (512/size)²). "
               "Iteration count not given: 1000 L-BFGS evaluations "
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


def get(name):
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}{suggest(name, RECIPES)} (see --list-recipes)")
    return RECIPES[name]

