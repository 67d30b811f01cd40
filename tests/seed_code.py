"""The seeds' own code, run: numpy transcriptions of each post's whole program, quirks included.

Written from the seed texts (../shared/seeds) and nothing else, never from the engine. Two layers:

* loss factories `seedNNN_loss(net, content, style, ...)`: the post's loss functions. Each computes the
  style and content targets once and returns `f(x) -> Reference` (raw terms as the engine logs them, the
  post's total, d total / d RGB image). x, content and style are RGB 0..255 float arrays (H, W, 3); the
  numpy VGG does the Caffe preprocessing itself. test_recipes.py checks them against finite differences.
* whole runs `run_seedNNN(net, content, style, ...)`: the post's loop as the code runs it, in the space the
  code optimises in (seeds 000, 003, 004: the preprocessed BGR image; seed 002: RGB 0..255), returning a
  `SeedRun`: every loss in order, what the code prints, the images it shows or saves, and its final image
  converted to uint8 exactly as the post converts it.

Defaults are the sources' numbers. Layers, sizes and iteration counts are parameters, so tests can run
them small. Each quirk has a switch named after the recipe field proposed for it in docs/quirks.md; the
default is what the source's code does, the other value the corrected behaviour.
Seed 001 (the Russian retelling) carries no code; seed 000's code stands for it.
"""
import dataclasses
import math

import numpy as np
from numpy_vgg import (IMAGENET_MEAN_BGR, Reference, caffe_deprocess, caffe_preprocess, chw, d_gram_chw, d_gram_hwc,
                       from_chw)
from scipy.optimize import fmin_l_bfgs_b

CONV1_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
VGG16_CONV = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
              "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
              "block5_conv3")
SAVE_CASTS = ("truncate", "round")


@dataclasses.dataclass
class SeedRun:
    losses: list  # one dict per loss evaluation, in order: iteration, total, content, style, tv (raw terms)
    printed: list  # what the code prints, as tuples of the printed values
    shown: list  # (iteration, uint8 RGB) for every image the code displays or saves during the run
    image: np.ndarray  # float64 RGB 0..255, unclipped: the image the post's result is made from
    result: np.ndarray  # uint8 RGB: the post's final image, converted as the post converts it
    best: int = None  # seed 000: the iteration whose loss was lowest


def to_uint8(rgb, save_cast="truncate"):
    """np.clip(x, 0, 255).astype('uint8') as every seed writes it (astype truncates toward zero); "round"
    rounds to the nearest level first (the engine's images.to_uint8 today)."""
    clipped = np.clip(rgb, 0, 255)
    return (np.round(clipped) if save_cast == "round" else clipped).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# Seed 000 (and 001): the TensorFlow blog post "Neural Style Transfer with eager execution", Vietnamese.
# ----------------------------------------------------------------------------------------------------------
def seed000_loss(net, content, style, content_weight=1e3, style_weight=1e-2,
                 content_layers=("block5_conv2",), style_layers=CONV1_LAYERS):
    """compute_loss: gram = aᵀa / n, n = H·W (gram_matrix); per style layer reduce_mean((G − A)²) weighted
    1/len (weight_per_style_layer); content reduce_mean((F − P)²) weighted 1/len;
    loss = style_weight · style_score + content_weight · content_score."""
    content_layers, style_layers = list(content_layers), list(style_layers)

    def gram_matrix(t):
        a = t.reshape(-1, t.shape[-1])
        return a.T @ a / a.shape[0]

    style_feats, _ = net.forward(style, style_layers)
    content_feats, _ = net.forward(content, content_layers)
    gram_style_features = [gram_matrix(style_feats[l]) for l in style_layers]

    def compute_loss(x):
        out, tape = net.forward(x, content_layers + style_layers)
        style_score = content_score = 0.0
        dfeats = {}
        for layer, target in zip(style_layers, gram_style_features):
            g = gram_matrix(out[layer])
            style_score += 1.0 / len(style_layers) * np.mean((g - target) ** 2)
            a = out[layer].reshape(-1, out[layer].shape[-1])
            dg = style_weight / len(style_layers) * 2 * (g - target) / g.size
            dfeats[layer] = dfeats.get(layer, 0) + d_gram_hwc(a, dg, a.shape[0]).reshape(out[layer].shape)
        for layer in content_layers:
            diff = out[layer] - content_feats[layer]
            content_score += 1.0 / len(content_layers) * np.mean(diff ** 2)
            dfeats[layer] = dfeats.get(layer, 0) + content_weight / len(content_layers) * 2 * diff / diff.size
        loss = style_weight * style_score + content_weight * content_score
        return Reference({"content": content_score, "style": style_score, "tv": 0.0}, loss,
                         net.backward(tape, dfeats))

    return compute_loss


def keras_deprocess(x, save_cast="truncate"):
    """deprocess_img (seed 000) and deprocess_image (seed 003), the same lines: x[:, :, 0] += 103.939;
    x[:, :, 1] += 116.779; x[:, :, 2] += 123.68; x = x[:, :, ::-1]; np.clip(x, 0, 255).astype('uint8')."""
    return to_uint8(caffe_deprocess(x), save_cast)


def display_iterations(num_iterations, num_rows=2, num_cols=5):
    """The iterations seed 000 shows: `i % display_interval == 0` with display_interval = num_iterations /
    (num_rows * num_cols), a float (1000 → every 100th; 15 → 1.5, so only 0, 3, 6, 9, 12)."""
    display_interval = num_iterations / (num_rows * num_cols)
    return [i for i in range(num_iterations) if i % display_interval == 0]


def run_seed000(net, content, style, num_iterations=1000, content_weight=1e3, style_weight=1e-2,
                learning_rate=5.0, beta1=0.99, beta2=0.999, epsilon=1e-1, num_rows=2, num_cols=5,
                content_layers=("block5_conv2",), style_layers=CONV1_LAYERS,
                best_image_after_update=True, grid_after_update=True, save_cast="truncate"):
    """run_style_transfer: tf.train.AdamOptimizer(learning_rate=5, beta1=0.99, epsilon=1e-1) on the
    preprocessed content image, no clip (commented out). In the loop `opt.apply_gradients` comes before
    `if loss < best_loss: best_img = deprocess_img(init_image.numpy())` and before the display, so the
    best and the shown images are the ones AFTER the update of their step. Returns best_img."""
    compute_loss = seed000_loss(net, content, style, content_weight, style_weight, content_layers, style_layers)
    init_image = caffe_preprocess(content)  # load_and_process_img(content_path)
    m = v = 0.0
    best_loss, best_x, best = math.inf, None, None
    shown_at = set(display_iterations(num_iterations, num_rows, num_cols))
    losses, printed, shown = [], [], []
    for i in range(num_iterations):
        ref = compute_loss(caffe_deprocess(init_image))
        grads = ref.grad[..., ::-1]  # d loss / d preprocessed image (BGR)
        loss = ref.total
        style_score, content_score = style_weight * ref.terms["style"], content_weight * ref.terms["content"]
        losses.append({"iteration": i, "total": loss, **ref.terms})
        # tf.train.AdamOptimizer's update (TF1: epsilon outside the bias correction)
        t = i + 1
        m = beta1 * m + (1 - beta1) * grads
        v = beta2 * v + (1 - beta2) * grads * grads
        lr_t = learning_rate * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        before = init_image
        init_image = init_image - lr_t * m / (np.sqrt(v) + epsilon)
        if loss < best_loss:
            best_loss, best = loss, i
            best_x = init_image if best_image_after_update else before
        if i in shown_at:
            shown.append((i, keras_deprocess(init_image if grid_after_update else before, save_cast)))
            printed.append((i, loss, style_score, content_score))  # style/content scores are the weighted ones
    return SeedRun(losses, printed, shown, caffe_deprocess(best_x), keras_deprocess(best_x, save_cast), best)


# ----------------------------------------------------------------------------------------------------------
# Seed 002: the Vietnamese TF1 post after Hvass-Labs tutorial 15 (VGG16; the image is RGB 0..255).
# ----------------------------------------------------------------------------------------------------------
def seed002_loss(net, content, style, c_layer_ids=(4,), s_layer_ids=range(13),
                 w_content=2.0, w_style=9.0, w_denoise=0.4):
    """content_loss: reduce_mean over layers of mean_square_error; style_loss: the same over raw Grams
    (reshape [-1, C], BᵀB); denoise_loss on the image: mean|x[1:]−x[:-1]| + mean|x[:,1:]−x[:,:-1]|;
    total_loss = w_content·adj_content·c_loss + w_denoise·adj_denoise·d_loss + w_style·adj_style·s_loss.

    Returns f(x, adj): adj = the (content, style, denoise) factors the gradient sees (tf.Variables, so
    constants for tf.gradients); None means 1 / (L + 1e-10) of x itself (the recipe today)."""
    c_layers = [VGG16_CONV[i] for i in c_layer_ids]
    s_layers = [VGG16_CONV[i] for i in s_layer_ids]

    def gram_matrix(a):
        b = a.reshape(-1, a.shape[-1])
        return b.T @ b

    c_values, _ = net.forward(content, c_layers)
    s_feats, _ = net.forward(style, s_layers)
    gram_matrix_values = [gram_matrix(s_feats[l]) for l in s_layers]

    def total_loss(x, adj=None):
        out, tape = net.forward(x, c_layers + s_layers)
        c_loss = np.mean([np.mean((out[l] - c_values[l]) ** 2) for l in c_layers])
        s_loss = np.mean([np.mean((v - gram_matrix(out[l])) ** 2) for v, l in zip(gram_matrix_values, s_layers)])
        dy, dx = x[1:, :, :] - x[:-1, :, :], x[:, 1:, :] - x[:, :-1, :]
        d_loss = np.mean(np.abs(dy)) + np.mean(np.abs(dx))
        if adj is None:
            adj = tuple(1 / (v + 1e-10) for v in (c_loss, s_loss, d_loss))
        adj_content, adj_style, adj_denoise = adj
        total = w_content * adj_content * c_loss + w_denoise * adj_denoise * d_loss + w_style * adj_style * s_loss
        dfeats = {}
        for l in c_layers:
            diff = out[l] - c_values[l]
            dfeats[l] = dfeats.get(l, 0) + w_content * adj_content / len(c_layers) * 2 * diff / diff.size
        for v, l in zip(gram_matrix_values, s_layers):
            g = gram_matrix(out[l])
            dg = w_style * adj_style / len(s_layers) * 2 * (g - v) / g.size
            b = out[l].reshape(-1, out[l].shape[-1])
            dfeats[l] = dfeats.get(l, 0) + d_gram_hwc(b, dg).reshape(out[l].shape)
        grad = net.backward(tape, dfeats)
        k = w_denoise * adj_denoise
        gy, gx = k * np.sign(dy) / dy.size, k * np.sign(dx) / dx.size  # d|t|/dt = sign(t), 0 at 0 as TF's
        grad[1:] += gy
        grad[:-1] -= gy
        grad[:, 1:] += gx
        grad[:, :-1] -= gx
        return Reference({"content": c_loss, "style": s_loss, "tv": d_loss}, total, grad)

    return total_loss


def run_seed002(net, content, style, x0=None, seed=0, iters=60, step_size=10, c_layer_ids=(4,),
                s_layer_ids=range(13), w_content=2.0, w_style=9.0, w_denoise=0.4,
                adaptive_weights_lag=True, result_after_last_update=True, save_cast="truncate"):
    """transfer(): generate_img = np.random.rand(*content_img.shape) + 128; every iteration ONE session.run
    of [grad, update_adj_content, update_adj_style, update_adj_denoise]. The gradient sees the adj values
    assigned by the previous run (RECIPES.md, measured on TF's compat.v1): 1e-10, the variables' initial
    value, for all three terms at step 0. learning_rate = step_size / (np.std(grad) + 1e-8);
    generate_img -= grad · learning_rate; clip to 0..255; plot_image every 10th iteration (clip, astype
    uint8). Returns generate_img after all updates; prints only i."""
    total_loss = seed002_loss(net, content, style, c_layer_ids, s_layer_ids, w_content, w_style, w_denoise)
    generate_img = (np.random.default_rng(seed).random(content.shape) + 128 if x0 is None
                    else np.array(x0, np.float64))
    adj = (1e-10, 1e-10, 1e-10)  # tf.Variable(1e-10) for each of adj_content, adj_style, adj_denoise
    losses, shown = [], []
    for i in range(iters):
        ref = total_loss(generate_img, adj if adaptive_weights_lag else None)
        used = adj if adaptive_weights_lag else tuple(1 / (ref.terms[k] + 1e-10) for k in ("content", "style", "tv"))
        losses.append({"iteration": i, "total": ref.total, **ref.terms, "adjust": used})
        adj = tuple(1 / (ref.terms[k] + 1e-10) for k in ("content", "style", "tv"))  # assigned by this run
        grad_value = ref.grad
        learning_rate = step_size / (np.std(grad_value) + 1e-8)
        before = generate_img
        generate_img = np.clip(generate_img - grad_value * learning_rate, 0.0, 255.0)
        if i % 10 == 0:
            shown.append((i, to_uint8(generate_img, save_cast)))  # plot_image
    final = generate_img if result_after_last_update else before
    return SeedRun(losses, [(i,) for i in range(iters)], shown, final, to_uint8(final, save_cast))


# ----------------------------------------------------------------------------------------------------------
# Seed 003: the Thai post, a translation of Mauro Comi's "Artificial Intelligence Meets Art: Neural Transfer
# Style" (Towards Data Science, 2018; full code github.com/maurock/neural_transfer_style, main.py). The post
# shows no values for the weights, the iteration count or the start; the article's main.py (commit d21d626,
# 2018-11-07) has content_weight 5, style_weight 2, total_variation_weight 1, iterations 20, rows 400 and
# x = preprocess_image(base_image_path); maxfun is the post's 15 (main.py: 25).
# ----------------------------------------------------------------------------------------------------------
def seed003_loss(net, content, style, content_weight=5.0, style_weight=2.0, total_variation_weight=1.0,
                 content_layer="block5_conv2", feature_layers=CONV1_LAYERS):
    """total_loss: content_weight · Σ(F(x) − F(base))²; gram = F Fᵀ of channels-first features; per layer
    Σ(S − C)² / (4 · 3² · (rows·cols)²) (channels = 3 and the IMAGE size, hard-coded); total_style_loss sums
    (style_weight / len) · per-layer and total_loss multiplies it by style_weight AGAIN; TV on the generated
    image in preprocessed space, Σ(a + b)^1.25 on the (rows−1) × (cols−1) grid. The three images run as one
    batch of 3; rows 0 and 1 give the same targets as separate runs."""
    rows, cols = content.shape[:2]
    feature_layers = list(feature_layers)

    def gram_matrix(t):
        features = chw(t)
        return features @ features.T

    def style_loss_per_layer(s, c):
        channels, size = 3, rows * cols
        return np.sum((s - c) ** 2) / (4.0 * (channels ** 2) * (size ** 2))

    base, _ = net.forward(content, [content_layer])
    ref, _ = net.forward(style, feature_layers)
    style_grams = {name: gram_matrix(ref[name]) for name in feature_layers}

    def total_loss(x):
        out, tape = net.forward(x, [content_layer] + feature_layers)
        diff = out[content_layer] - base[content_layer]
        c_loss = np.sum(diff ** 2)
        total_style = per_layer_sum = 0.0
        dfeats = {content_layer: content_weight * 2 * diff}
        for name in feature_layers:
            s, c = style_grams[name], gram_matrix(out[name])
            sl = style_loss_per_layer(s, c)
            total_style += (style_weight / len(feature_layers)) * sl
            per_layer_sum += sl / len(feature_layers)
            dg = style_weight * (style_weight / len(feature_layers)) * 2 * (c - s) / (4.0 * 9 * (rows * cols) ** 2)
            dfeats[name] = dfeats.get(name, 0) + from_chw(d_gram_chw(chw(out[name]), dg), out[name].shape)
        xp = caffe_preprocess(x)  # combination_image lives in preprocessed space
        a = (xp[: rows - 1, : cols - 1, :] - xp[1:, : cols - 1, :]) ** 2
        b = (xp[: rows - 1, : cols - 1, :] - xp[: rows - 1, 1:, :]) ** 2
        tv = np.sum((a + b) ** 1.25)
        loss = content_weight * c_loss + total_style * style_weight + total_variation_weight * tv
        grad = net.backward(tape, dfeats)
        q = total_variation_weight * 1.25 * (a + b) ** 0.25
        d1 = xp[: rows - 1, : cols - 1] - xp[1:, : cols - 1]
        d2 = xp[: rows - 1, : cols - 1] - xp[: rows - 1, 1:]
        gxp = np.zeros_like(xp)
        gxp[: rows - 1, : cols - 1] += q * 2 * (d1 + d2)
        gxp[1:, : cols - 1] -= q * 2 * d1
        gxp[: rows - 1, 1:] -= q * 2 * d2
        grad += gxp[..., ::-1]
        return Reference({"content": c_loss, "style": per_layer_sum, "tv": tv}, loss, grad)

    return total_loss


def seed003_outer_loop(f_and_g, x, iterations, maxfun, lbfgs_call_overshoot=True, **lbfgs_kw):
    """Seed 003's loop with its Evaluator (loss(x) computes both, grads(x) returns the cached gradient):
    `for i in range(iterations): x, min_val, info = fmin_l_bfgs_b(evaluator.loss, x.flatten(),
    fprime=evaluator.grads, maxfun=..)`. Returns every call (x, loss) and every restart's (x, min_val,
    calls so far). `lbfgs_call_overshoot=False` (the corrected budget): a call asked for evaluation
    maxfun + 1 stops there and keeps the last iterate scipy accepted (its callback's)."""

    class Spent(Exception):
        pass

    class Evaluator:
        def __init__(self):
            self.loss_value = None
            self.calls = []
            self.limit = None

        def loss(self, x):
            assert self.loss_value is None
            if self.limit is not None and len(self.calls) >= self.limit:
                raise Spent()
            loss_value, grad_values = f_and_g(x)
            self.loss_value, self.grad_values = loss_value, grad_values
            self.calls.append((np.array(x), loss_value))
            return self.loss_value

        def grads(self, x):
            assert self.loss_value is not None
            grad_values = np.copy(self.grad_values)
            self.loss_value = None
            self.grad_values = None
            return grad_values

    evaluator = Evaluator()
    boundaries = []
    for i in range(iterations):
        if lbfgs_call_overshoot:
            x, min_val, info = fmin_l_bfgs_b(evaluator.loss, x.flatten(), fprime=evaluator.grads, maxfun=maxfun,
                                             **lbfgs_kw)
        else:
            evaluator.limit = len(evaluator.calls) + maxfun
            accepted = [x.flatten()]
            try:
                x, min_val, info = fmin_l_bfgs_b(evaluator.loss, x.flatten(), fprime=evaluator.grads,
                                                 maxfun=maxfun, callback=lambda xk: accepted.append(xk.copy()),
                                                 **lbfgs_kw)
            except Spent:
                evaluator.loss_value = None
                x = accepted[-1]
                min_val = next(loss for point, loss in reversed(evaluator.calls) if np.array_equal(point, x))
        boundaries.append((x.copy(), min_val, len(evaluator.calls)))
    return evaluator.calls, boundaries


def run_seed003(net, content, style, x0=None, iterations=20, maxfun=15, content_weight=5.0, style_weight=2.0,
                total_variation_weight=1.0, content_layer="block5_conv2", feature_layers=CONV1_LAYERS,
                save_cast="truncate", lbfgs_call_overshoot=True):
    """The post's last block: `iterations` restarts of fmin_l_bfgs_b(maxfun=15) on the flattened
    preprocessed image, each printing min_val and saving deprocess_image(x.copy()) (clip, astype uint8,
    written as a PNG). x starts as the preprocessed content (x0: another RGB start). The result is the
    last saved image."""
    total_loss = seed003_loss(net, content, style, content_weight, style_weight, total_variation_weight,
                              content_layer, feature_layers)
    shape = content.shape
    terms = []

    def eval_loss_and_grads(x):
        ref = total_loss(caffe_deprocess(x.reshape(shape)))
        terms.append(ref.terms)
        return ref.total, ref.grad[..., ::-1].ravel()  # d loss / d preprocessed image

    x = caffe_preprocess(content if x0 is None else x0)
    calls, boundaries = seed003_outer_loop(eval_loss_and_grads, x, iterations, maxfun, lbfgs_call_overshoot)
    restart_of = np.searchsorted([n for _, _, n in boundaries], np.arange(len(calls)), side="right")
    losses = [{"iteration": int(i), "total": loss, **t} for i, (_, loss), t in zip(restart_of, calls, terms)]
    images = [x_i.reshape(shape) for x_i, _, _ in boundaries]
    return SeedRun(losses, [(i, min_val) for i, (_, min_val, _) in enumerate(boundaries)],
                   [(i, keras_deprocess(x_i, save_cast)) for i, x_i in enumerate(images)],
                   caffe_deprocess(images[-1]), keras_deprocess(images[-1], save_cast))


# ----------------------------------------------------------------------------------------------------------
# Seed 004: the Spanish post, Keras VGG19, normalised gradient descent from white noise.
# ----------------------------------------------------------------------------------------------------------
SEED004_STYLE_LAYERS = ("block5_conv1", "block4_conv1", "block3_conv1", "block2_conv1")


def seed004_loss(net, content, style, lam=1e2, norm_size=(422, 750), content_layer="block1_conv1",
                 style_layers=SEED004_STYLE_LAYERS):
    """content_loss = 0.5 · Σ(F − P)²; get_style_loss: 0.25 · Σ(G_target − G_photo)², gram = F Fᵀ channels-
    first, times w / (3·422·750)² (`loss = w*loss /(3*422*750)**2`, the post's own photo size); the final
    loop (not valid Python as printed) adds lam · get_style_loss(s, ts, 1/(i+2)) for the layers in order;
    loss = content + lam · Σ style. norm_size: the (H, W) of that literal; None: the photo's own size."""
    h, w = content.shape[:2] if norm_size is None else norm_size
    style_layers = list(style_layers)

    def gram_matrix(t):
        f = chw(t)
        return f @ f.T

    target_content, _ = net.forward(content, [content_layer])
    target_style, _ = net.forward(style, style_layers)
    target_grams = {name: gram_matrix(target_style[name]) for name in style_layers}

    def loss(x):
        out, tape = net.forward(x, [content_layer] + style_layers)
        diff = out[content_layer] - target_content[content_layer]
        content_loss = 0.5 * np.sum(diff ** 2)
        style_sum = 0.0
        dfeats = {content_layer: diff}
        for i, name in enumerate(style_layers):
            wi = 1 / (i + 2)
            tg, pg = target_grams[name], gram_matrix(out[name])
            style_sum += wi * 0.25 * np.sum((tg - pg) ** 2) / (3 * h * w) ** 2
            dg = lam * wi * 0.25 * 2 * (pg - tg) / (3 * h * w) ** 2
            dfeats[name] = dfeats.get(name, 0) + from_chw(d_gram_chw(chw(out[name]), dg), out[name].shape)
        total = content_loss + lam * style_sum
        return Reference({"content": content_loss, "style": style_sum, "tv": 0.0}, total, net.backward(tape, dfeats))

    return loss


def seed004_save(x, deprocess_channel_slip=True, save_cast="truncate"):
    """deprocess_image then `Image.fromarray((final*255).astype('uint8'))`, x the preprocessed image.
    The post flips first (x = x[..., ::-1]) and then adds the means in BGR order, so channel 0 (now R)
    gets B's mean: R − 19.741 and B + 19.741 against a correct deprocessing; clip; / 255; · 255; truncate."""
    if deprocess_channel_slip:
        mean = [103.939, 116.779, 123.68]
        x = np.array(x, np.float64)[..., ::-1]
        x[..., 0] += mean[0]
        x[..., 1] += mean[1]
        x[..., 2] += mean[2]
    else:
        x = caffe_deprocess(x)
    final = np.clip(x, 0, 255) / 255
    return to_uint8(final * 255, save_cast)


def run_seed004(net, content, style, x0=None, seed=0, iterations=1500, step=0.01, lam=1e2, norm_size=(422, 750),
                content_layer="block1_conv1", style_layers=SEED004_STYLE_LAYERS, result_after_last_update=True,
                deprocess_channel_slip=True, save_cast="truncate"):
    """input_img_data = np.random.random(photo.shape) (preprocessed space); every iteration
    loss_value, grads_value = iterate([input_img_data]) with grads /= (sqrt(mean(grads²)) + 1e-5), then
    input_img_data -= grads_value · step; `if i % 100 == 0: print(i, loss_value)`. No clip. The result is
    the image after the last update, saved through seed004_save (as result.jpg, JPEG quality 75)."""
    loss = seed004_loss(net, content, style, lam, norm_size, content_layer, style_layers)
    input_img_data = (np.random.default_rng(seed).random(content.shape) if x0 is None
                      else caffe_preprocess(x0))
    losses, printed = [], []
    for i in range(iterations):
        ref = loss(caffe_deprocess(input_img_data))
        losses.append({"iteration": i, "total": ref.total, **ref.terms})
        grads = ref.grad[..., ::-1]  # d loss / d preprocessed image
        grads = grads / (np.sqrt(np.mean(np.square(grads))) + 1e-5)
        before = input_img_data
        input_img_data = input_img_data - grads * step
        if i % 100 == 0:
            printed.append((i, ref.total))
    final = input_img_data if result_after_last_update else before
    return SeedRun(losses, printed, [], caffe_deprocess(final), seed004_save(final, deprocess_channel_slip, save_cast))


# ----------------------------------------------------------------------------------------------------------
# jcjohnson/neural-style: neural_style.lua (its loss modules, preprocess/deprocess, feval, maybe_save) with
# Torch7's optim.lbfgs (torch/optim lbfgs.lua), both read from their sources. Everything happens in the
# preprocessed space z = BGR(image / 255) · 256 − mean, channels-first as Torch holds a (C, H, W) tensor.
# ----------------------------------------------------------------------------------------------------------
def jcjohnson_preprocess(rgb):
    """preprocess(image.load(path, 3)): the 0..1 image, channels {3, 2, 1}, :mul(256.0), minus mean_pixel."""
    return (np.asarray(rgb, np.float64) / 255.0)[..., ::-1] * 256.0 - IMAGENET_MEAN_BGR


def jcjohnson_deprocess(z):
    """deprocess: + mean_pixel, channels {3, 2, 1}, :div(256.0): RGB 0..1."""
    return (np.asarray(z, np.float64) + IMAGENET_MEAN_BGR)[..., ::-1] / 256.0


def jcjohnson_net(net, content_z, style_z, content_weight=5e0, style_weight=1e2, tv_weight=1e-3,
                  content_layers=("block4_conv2",), style_layers=CONV1_LAYERS):
    """The nn.Sequential with TVLoss first and a ContentLoss / StyleLoss module after each chosen ReLU, in
    'capture' then 'loss' mode. Returns feval_parts(z) -> (content module losses, style module losses,
    dloss/dz from net:updateGradInput(x, dy) with dy = 0: each module's gradInput added on the way down)."""
    content_layers, style_layers = list(content_layers), list(style_layers)

    def forward(z, layers):
        return net.forward(caffe_deprocess(z), layers)  # the numpy VGG takes RGB and subtracts the mean itself

    def flat(t):  # input:view(C, H * W)
        return chw(t)

    targets, _ = forward(content_z, content_layers)
    style_out, _ = forward(style_z, style_layers)
    style_targets = {}
    for name in style_layers:  # StyleLoss capture: self.G = gram / input:nElement(); target = G (blend 1)
        x_flat = flat(style_out[name])
        style_targets[name] = x_flat @ x_flat.T / style_out[name].size

    def feval_parts(z):
        out, tape = forward(z, content_layers + style_layers)
        content_losses, style_losses, dfeats = [], [], {}
        for name in content_layers:  # ContentLoss: crit = nn.MSECriterion() (sizeAverage: the mean)
            diff = out[name] - targets[name]
            content_losses.append(np.mean(diff ** 2) * content_weight)
            # gradInput = crit:backward(input, target) = 2 (input − target) / nElement, :mul(strength)
            dfeats[name] = dfeats.get(name, 0) + 2.0 * diff / diff.size * content_weight
        for name in style_layers:  # StyleLoss
            x_flat = flat(out[name])
            n_elements = out[name].size
            g = x_flat @ x_flat.T / n_elements
            style_losses.append(style_weight * np.mean((g - style_targets[name]) ** 2))
            dg = 2.0 * (g - style_targets[name]) / g.size  # crit:backward(self.G, self.target)
            dg = dg / n_elements  # dG:div(input:nElement())
            d_flat = dg @ x_flat + dg.T @ x_flat  # Gram:updateGradInput: mm(gradOutput, x_flat) + addmm(gᵀ, x)
            dfeats[name] = dfeats.get(name, 0) + from_chw(d_flat * style_weight, out[name].shape)
        grad_z = net.backward(tape, dfeats)[..., ::-1]  # d/dRGB back to d/dz (BGR; the mean shift: 1)
        # TVLoss:updateGradInput, on the module's input z (first in the net, so its gradInput is the image's)
        x_diff = z[:-1, :-1] - z[:-1, 1:]
        y_diff = z[:-1, :-1] - z[1:, :-1]
        tv = np.zeros_like(z)
        tv[:-1, :-1] += x_diff + y_diff
        tv[:-1, 1:] -= x_diff
        tv[1:, :-1] -= y_diff
        return content_losses, style_losses, grad_z + tv_weight * tv

    return feval_parts


def optim_lbfgs(opfunc, x, maxIter=20, maxEval=None, tolFun=1e-5, tolX=1e-9, nCorrection=100, learningRate=1.0,
                state=None):
    """optim.lbfgs(opfunc, x, config) with lineSearch nil, line by line; x is updated in place (x:add(t, d))
    as Torch does. `state` (a dict) carries d, t, the pairs and g_old between calls, as the config table does."""
    state = {} if state is None else state
    maxEval = maxIter * 1.25 if maxEval is None else maxEval
    state.setdefault("funcEval", 0)
    state.setdefault("nIter", 0)
    f, g = opfunc(x)
    f_hist = [f]
    currentFuncEval = 1
    state["funcEval"] += 1
    if np.abs(g).sum() <= tolFun:
        return x, f_hist
    d, t = state.get("d"), state.get("t")
    old_dirs, old_stps = state.get("old_dirs"), state.get("old_stps")
    Hdiag, g_old, f_old = state.get("Hdiag"), state.get("g_old"), state.get("f_old")
    nIter = 0
    while nIter < maxIter:
        nIter += 1
        state["nIter"] += 1
        if state["nIter"] == 1:
            d = -g
            old_dirs, old_stps, Hdiag = [], [], 1.0
        else:
            y = g - g_old
            s = d * t
            ys = y @ s
            if ys > 1e-10:
                if len(old_dirs) == nCorrection:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                old_dirs.append(s)
                old_stps.append(y)
                Hdiag = ys / (y @ y)
            k = len(old_dirs)
            ro = [1.0 / (old_stps[i] @ old_dirs[i]) for i in range(k)]
            al = [0.0] * k
            q = -g
            for i in range(k - 1, -1, -1):
                al[i] = (old_dirs[i] @ q) * ro[i]
                q = q - al[i] * old_stps[i]
            r = q * Hdiag
            for i in range(k):
                be_i = (old_stps[i] @ r) * ro[i]
                r = r + (al[i] - be_i) * old_dirs[i]
            d = r
        g_old = g.copy()
        f_old = f
        gtd = g @ d
        if gtd > -tolX:
            break
        t = min(1.0, 1.0 / np.abs(g).sum()) * learningRate if state["nIter"] == 1 else learningRate
        lsFuncEval = 0
        x += t * d
        if nIter != maxIter:
            f, g = opfunc(x)
            lsFuncEval = 1
            f_hist.append(f)
        currentFuncEval += lsFuncEval
        state["funcEval"] += lsFuncEval
        if nIter == maxIter:
            break
        if currentFuncEval >= maxEval:
            break
        if np.abs(g).sum() <= tolFun:
            break
        if np.abs(d * t).sum() <= tolX:
            break
        if abs(f - f_old) < tolX:
            break
    state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, Hdiag=Hdiag, g_old=g_old, f_old=f_old)
    return x, f_hist


def run_jcjohnson(net, content, style, z0, num_iterations=1000, content_layers=("block4_conv2",),
                  style_layers=CONV1_LAYERS, content_weight=5e0, style_weight=1e2, tv_weight=1e-3):
    """main(params) with -optimizer lbfgs: optim_state {maxIter = num_iterations, tolX = -1, tolFun = -1}
    (lbfgs_num_correction 0: optim's nCorrection 100); feval sums the content and style modules' losses
    (no TV: TVLoss has none) and maybe_save writes the image at num_calls == num_iterations: deprocess,
    image.minmax{min=0, max=1} (a no-op with both bounds given), image.save: saturate to 0..1, × 255.
    content / style: RGB 0..255 (image.load's 0..1 × 255); z0: the start in the preprocessed space."""
    feval_parts = jcjohnson_net(net, jcjohnson_preprocess(content), jcjohnson_preprocess(style), content_weight,
                                style_weight, tv_weight, content_layers, style_layers)
    losses, saved = [], {}
    shape = z0.shape

    def feval(x):
        z = x.reshape(shape)
        content_losses, style_losses, grad = feval_parts(z)
        loss = sum(content_losses) + sum(style_losses)
        losses.append({"total": loss, "content": sum(content_losses), "style": sum(style_losses)})
        if len(losses) == num_iterations:  # maybe_save(num_calls): t == params.num_iterations
            saved["image"] = jcjohnson_deprocess(z) * 255.0
        return loss, grad.ravel()

    x = np.array(z0, np.float64).ravel()
    optim_lbfgs(feval, x, maxIter=num_iterations, tolX=-1, tolFun=-1)
    image = saved["image"]
    return SeedRun(losses, [], [], image, to_uint8(image, "truncate"))


# ----------------------------------------------------------------------------------------------------------
# The authors' notebook: leongatys/PytorchNeuralStyleTransfer, NeuralStyleTransfer.ipynb, with PyTorch's
# torch.optim.LBFGS (lr 1, max_iter 20, max_eval 25, tolerance_grad 1e-5, tolerance_change 1e-9, history
# 100, no line search; the 2017 code). Its opt_img lives in prep's space: BGR(image / 255) − mean/255, × 255,
# the Keras caffe space; channels-first.
# ----------------------------------------------------------------------------------------------------------
def gatys_code_loss(net, content, style, style_layers=CONV1_LAYERS, content_layers=("block4_conv2",),
                    style_weights=tuple(1e3 / n ** 2 for n in (64, 128, 256, 512, 512)), content_weights=(1e0,)):
    """layer_losses = [weights[a] · loss_fns[a](A, targets[a])]: GramMSELoss = nn.MSELoss()(GramMatrix(A),
    target), GramMatrix = bmm(F, Fᵀ) / (h·w); nn.MSELoss for content. x, content, style: RGB 0..255."""
    style_layers, content_layers = list(style_layers), list(content_layers)

    def gram(a):
        f = chw(a)
        return f @ f.T / (a.shape[0] * a.shape[1])

    s_out, _ = net.forward(style, style_layers)
    c_out, _ = net.forward(content, content_layers)
    style_targets = {name: gram(s_out[name]) for name in style_layers}

    def loss(x):
        out, tape = net.forward(x, style_layers + content_layers)
        style_total = content_total = 0.0
        dfeats = {}
        for name, w in zip(style_layers, style_weights):
            g = gram(out[name])
            style_total += w * np.mean((g - style_targets[name]) ** 2)
            dg = w * 2 * (g - style_targets[name]) / g.size / (out[name].shape[0] * out[name].shape[1])
            dfeats[name] = dfeats.get(name, 0) + from_chw(d_gram_chw(chw(out[name]), dg), out[name].shape)
        for name, w in zip(content_layers, content_weights):
            diff = out[name] - c_out[name]
            content_total += w * np.mean(diff ** 2)
            dfeats[name] = dfeats.get(name, 0) + w * 2 * diff / diff.size
        grad = net.backward(tape, dfeats)
        return Reference({"content": content_total, "style": style_total, "tv": 0.0}, content_total + style_total,
                         grad)

    return loss


def torch_lbfgs_step(closure, x, state, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-5,
                     tolerance_change=1e-9, history_size=100):
    """torch.optim.LBFGS.step(closure) without line_search_fn, the parameter x updated in place; `state`
    persists between calls as optimizer.state does."""
    max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
    state.setdefault("func_evals", 0)
    state.setdefault("n_iter", 0)
    orig_loss, flat_grad = closure()
    loss = orig_loss
    current_evals = 1
    state["func_evals"] += 1
    abs_grad_sum = np.abs(flat_grad).sum()
    if abs_grad_sum <= tolerance_grad:
        return orig_loss
    d, t = state.get("d"), state.get("t")
    old_dirs, old_stps = state.get("old_dirs"), state.get("old_stps")
    H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        state["n_iter"] += 1
        if state["n_iter"] == 1:
            d = -flat_grad
            old_dirs, old_stps, H_diag = [], [], 1
        else:
            y = flat_grad - prev_flat_grad
            s = d * t
            ys = y @ s
            if ys > 1e-10:
                if len(old_dirs) == history_size:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                old_dirs.append(s)
                old_stps.append(y)
                H_diag = ys / (y @ y)
            num_old = len(old_dirs)
            ro = [1.0 / (old_stps[i] @ old_dirs[i]) for i in range(num_old)]
            al = [0.0] * num_old
            q = -flat_grad
            for i in range(num_old - 1, -1, -1):
                al[i] = (old_dirs[i] @ q) * ro[i]
                q = q - al[i] * old_stps[i]
            d = r = q * H_diag
            for i in range(num_old):
                be_i = (old_stps[i] @ r) * ro[i]
                r = r + (al[i] - be_i) * old_dirs[i]
            d = r
        prev_flat_grad = flat_grad.copy()
        prev_loss = loss
        t = min(1.0, 1.0 / abs_grad_sum) * lr if state["n_iter"] == 1 else lr
        gtd = flat_grad @ d
        ls_func_evals = 0
        x += t * d  # self._add_grad(t, d)
        if n_iter != max_iter:
            loss, flat_grad = closure()
            abs_grad_sum = np.abs(flat_grad).sum()
            ls_func_evals = 1
        current_evals += ls_func_evals
        state["func_evals"] += ls_func_evals
        if n_iter == max_iter:
            break
        if current_evals >= max_eval:
            break
        if abs_grad_sum <= tolerance_grad:
            break
        if gtd > -tolerance_change:
            break
        if np.abs(d * t).sum() <= tolerance_change:
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, H_diag=H_diag, prev_flat_grad=prev_flat_grad,
                 prev_loss=prev_loss)
    return orig_loss


def run_gatys_code(net, content, style, max_iter=500, style_layers=CONV1_LAYERS, content_layers=("block4_conv2",),
                   style_weights=tuple(1e3 / n ** 2 for n in (64, 128, 256, 512, 512)), loss_fn=None,
                   dtype=np.float64):
    """opt_img = content_image.clone(); optimizer = optim.LBFGS([opt_img]); n_iter = [0];
    while n_iter[0] <= max_iter: optimizer.step(closure) (closure: n_iter[0] += 1); out_img = postp(opt_img):
    postpa (/255, + mean, RGB), clamp to 0..1, ToPILImage (mul(255).byte(): truncation). content / style:
    RGB 0..255 (prep's space is the caffe space). `loss_fn(rgb) -> Reference` replaces the vgg and loss
    modules (gatys_code_loss) when given: the loop and the optimiser alone, driven by another evaluation.
    `dtype`: the optimiser's arithmetic; the notebook's tensors are float32 (torch.FloatTensor)."""
    loss_fn = loss_fn or gatys_code_loss(net, content, style, style_layers, content_layers, style_weights)
    shape = content.shape
    x = caffe_preprocess(np.asarray(content, np.float64)).ravel().astype(dtype)
    losses, state, n_iter = [], {}, [0]

    def closure():
        ref = loss_fn(caffe_deprocess(x.reshape(shape)))
        n_iter[0] += 1
        losses.append({"total": ref.total, "content": ref.terms["content"], "style": ref.terms["style"]})
        return ref.total, ref.grad[..., ::-1].ravel().astype(dtype)  # d/d opt_img (BGR)

    while n_iter[0] <= max_iter:
        torch_lbfgs_step(closure, x, state)
    image = caffe_deprocess(x.reshape(shape))
    return SeedRun(losses, [], [], image, to_uint8(image, "truncate"))
