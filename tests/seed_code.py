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
from scipy.optimize import fmin_l_bfgs_b

from numpy_vgg import (Reference, caffe_deprocess, caffe_preprocess, chw, d_gram_chw,
                       d_gram_hwc, from_chw)

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
