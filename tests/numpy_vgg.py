"""A plain-numpy VGG (float64) with a hand-written backward pass, the oracle the engine is compared with.

Written from the Keras layer definitions, never from the engine: the first layer sees Caffe-preprocessed
BGR (RGB -> BGR, minus the ImageNet mean) and the Keras kernels are used as they are. Used by the seed
transcriptions (seed_code.py) and the recipe tests (test_recipes.py).
"""
import contextlib
import ctypes
import dataclasses

import numpy as np

IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68])
VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


@contextlib.contextmanager
def single_threaded_blas():
    """numpy's OpenBLAS threads spin badly when the 2 cores are shared (10-100x slower on these small
    matrices): run the reference on one thread, then restore. Every loaded OpenBLAS is set (numpy's and
    opencv's are different copies); a no-op where none is found."""
    controls = []
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and line.split()[-1].startswith("/")}
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_%s_num_threads64_", "openblas_%s_num_threads64_", "openblas_%s_num_threads"):
            if hasattr(lib, name % "set") and hasattr(lib, name % "get"):
                controls.append((getattr(lib, name % "set"), getattr(lib, name % "get")()))
                break
    for setter, _ in controls:
        setter(1)
    try:
        yield
    finally:
        for setter, previous in controls:
            setter(previous)


def caffe_preprocess(rgb):
    """keras.applications.vgg19.preprocess_input, mode 'caffe': RGB -> BGR, minus the mean."""
    return rgb[..., ::-1] - IMAGENET_MEAN_BGR


def conv3x3_relu(x, kernel, bias):
    """SAME 3x3 cross-correlation (as tf.nn.conv2d / Keras Conv2D) + bias + ReLU, via im2col."""
    h, w, c = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    offsets = [(dy, dx) for dy in range(3) for dx in range(3)]  # the order of kernel.reshape(9 * c, out)
    cols = np.concatenate([padded[dy:dy + h, dx:dx + w] for dy, dx in offsets], axis=-1)
    k = kernel.reshape(9 * c, -1)
    z = (cols.reshape(h * w, 9 * c) @ k + bias).reshape(h, w, -1)
    y = np.maximum(z, 0.0)

    def backward(dy_out):
        dcols = ((dy_out * (z > 0)).reshape(h * w, -1) @ k.T).reshape(h, w, 9 * c)
        dpadded = np.zeros_like(padded)
        for j, (dy, dx) in enumerate(offsets):
            dpadded[dy:dy + h, dx:dx + w] += dcols[..., j * c:(j + 1) * c]
        return dpadded[1:-1, 1:-1]

    return y, backward


def pool2x2(x, kind):
    """2x2 stride-2 VALID pooling (an odd last row/column is dropped, as TF's VALID padding does)."""
    h, w, c = x.shape
    blocks = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c)
    if kind == "max":  # the gradient goes to the first maximum of each window in row-major order, as TF's
        y = blocks.max(axis=(1, 3))
        window = blocks.transpose(0, 2, 4, 1, 3).reshape(h // 2, w // 2, c, 4)
        first = np.arange(4) == window.argmax(axis=-1)[..., None]
        mask = first.reshape(h // 2, w // 2, c, 2, 2).transpose(0, 3, 1, 4, 2).astype(np.float64)
    else:
        y = blocks.mean(axis=(1, 3))
        mask = np.full(blocks.shape, 0.25)

    def backward(dy_out):
        dx = np.zeros_like(x)
        dx[: h // 2 * 2, : w // 2 * 2] = (mask * dy_out[:, None, :, None]).reshape(h // 2 * 2, w // 2 * 2, c)
        return dx

    return y, backward


class NumpyVGG:
    """Activations after ReLU, Keras layer names; the first layer sees Caffe-preprocessed BGR."""

    def __init__(self, network, params, pooling):
        self.order = [f"block{b}_conv{i}" for b, n in enumerate(VGG_BLOCKS[network], 1) for i in range(1, n + 1)]
        self.params = {k: (np.float64(v[0]), np.float64(v[1])) for k, v in params.items()}
        self.pooling = pooling

    def forward(self, rgb, layers):
        deepest = max(self.order.index(name) for name in layers)
        x, tape, feats = caffe_preprocess(np.asarray(rgb, np.float64)), [], {}
        for name in self.order[: deepest + 1]:
            if name.endswith("_conv1") and name != "block1_conv1":
                x, back = pool2x2(x, self.pooling)
                tape.append((None, back))
            x, back = conv3x3_relu(x, *self.params[name])
            tape.append((name, back))
            feats[name] = x
        return feats, tape

    @staticmethod
    def backward(tape, dfeats):
        """d loss / d RGB image, given d loss / d activation for some layers."""
        d = None
        for name, back in reversed(tape):
            if name in dfeats:
                d = dfeats[name] if d is None else d + dfeats[name]
            if d is not None:
                d = back(d)
        return d[..., ::-1]  # through the BGR flip (the mean shift has unit derivative)


# Gradients of the small building blocks the seeds share (values are written out in each seed function).
def d_gram_hwc(a, dgram, divisor=1.0):
    """a: (positions, C); gram = aᵀa / divisor; returns d/da given d/dgram."""
    return a @ (dgram + dgram.T) / divisor


def d_gram_chw(features, dgram):
    """features: (C, positions) channels-first; gram = F Fᵀ; returns d/dF."""
    return (dgram + dgram.T) @ features


def chw(x):
    """K.batch_flatten(K.permute_dimensions(x, (2, 0, 1))) for one (H, W, C) activation."""
    return x.transpose(2, 0, 1).reshape(x.shape[-1], -1)


def from_chw(d, shape):
    h, w, c = shape
    return d.reshape(c, h, w).transpose(1, 2, 0)


@dataclasses.dataclass
class Reference:
    terms: dict  # raw, unweighted content / style / tv as the engine reports them
    total: float
    grad: np.ndarray  # d total / d RGB image (adaptive: with the adj factors held constant)



def caffe_deprocess(bgr):
    """The inverse of caffe_preprocess: preprocessed BGR back to RGB 0..255 (floats, no clip)."""
    return np.asarray(bgr, np.float64)[..., ::-1] + IMAGENET_MEAN_BGR[::-1]
