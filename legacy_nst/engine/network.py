"""VGG16/VGG19 from a table of block sizes, as tf.nn ops in a tf.compat.v1 graph.

The network takes an RGB image in 0..255 and does Keras' "caffe" preprocessing itself, so every optimiser
and clip works on plain pixels. It is built only as deep as the deepest layer a loss reads: VGG19 up to
block3_conv1 is 5 convolutions instead of 16. How each convolution and its gradient are computed depends on
where the graph runs (default_conv: a rule from measurement, keyed on the CPU's flags).
"""
import numpy as np

from .runtime import tf
from ..errors import UserError
from ..vgg.architecture import CAFFE_MEAN_BGR, POOLINGS, canonical_layer, conv_layers, deepest_layer


def _flip(kernel):
    """The kernel turned 180° with its in and out channels swapped (HWIO -> HWOI), see _conv3x3."""
    return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))


def _lazy_weight(value, name, flip=False):
    """`value` (or _flip(value)) as a resource variable that fills itself on a session's first run; returns
    its read tensor.

    Graph constants would be copied into every executor a Session builds (one per distinct set of fetches)
    and through Grappler's passes: for VGG19 up to block5 that held about 1 GB of extra resident memory
    at any image size. A variable holds one copy, and needs no initializer run: the read waits on a cond
    that, while the variable is still empty, assigns it from `value` through tf.numpy_function."""
    value = np.ascontiguousarray(value, np.float32)
    shape = (value.shape[0], value.shape[1], value.shape[3], value.shape[2]) if flip else value.shape
    name = tf.compat.v1.get_default_graph().unique_name(name, mark_as_used=False)
    handle = tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=shape, shared_name=name, name=name)

    def load():
        make = (lambda: _flip(value)) if flip else (lambda: value)
        loaded = tf.numpy_function(make, [], tf.float32, stateful=True, name=f"{name}_load")
        loaded.set_shape(shape)
        with tf.control_dependencies([tf.raw_ops.AssignVariableOp(resource=handle, value=loaded)]):
            return tf.constant(True)

    ready = tf.raw_ops.VarIsInitializedOp(resource=handle)
    filled = tf.cond(ready, lambda: tf.constant(False), load, name=f"{name}_fill")
    with tf.control_dependencies([filled]):
        return tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.float32, name=f"{name}_read")


def _conv3x3(x, kernel, flipped):
    """SAME, stride-1 convolution of x with a 3 × 3 `kernel` (HWIO), its gradient with respect to x only.

    Computed as the transposed convolution of `flipped` (the kernel turned 180° with its in and out
    channels swapped), which is the same sum (with oneDNN, the same bits as Conv2D on a variable filter).
    The reason is oneDNN on AVX-512: TensorFlow reorders a Conv2D filter into oneDNN's blocked layout (and
    caches it) only when the filter is a graph constant; a variable's filter is convolved in its plain HWIO
    layout, up to 1.7× slower at 512 px on an AVX-512 Xeon. Conv2DBackpropInput reorders its filter on every
    run and was as fast there as the cached forward (bench/README.md), so both directions use it; the
    gradient is TF's own for a Conv2D. On AVX2 the opposite holds (default_conv, _conv3x3_forward)."""

    @tf.custom_gradient
    def conv(x, kernel, flipped):
        shape = tf.shape(x)
        out_shape = tf.concat([shape[:3], tf.shape(kernel)[3:]], 0)
        y = tf.raw_ops.Conv2DBackpropInput(input_sizes=out_shape, filter=flipped, out_backprop=x,
                                           strides=[1, 1, 1, 1], padding="SAME")
        y.set_shape(x.shape[:3].concatenate(kernel.shape[3:]))

        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=shape, filter=kernel, out_backprop=dy,
                                                strides=[1, 1, 1, 1], padding="SAME")
            return dx, None, None

        return y, grad

    return conv(x, kernel, flipped)


def _conv3x3_forward(x, kernel, flipped):
    """The same convolution with both directions as forward Conv2D: y = conv2d(x, kernel) and the input
    gradient conv2d(dy, flipped) (a 3 × 3 SAME stride-1 transposed convolution is the correlation with the
    kernel turned 180°, in and out channels swapped). For CPUs without AVX-512, where oneDNN's forward kernel
    is twice as fast as its backward-data one (default_conv); Grappler still fuses the forward with its bias
    and ReLU (_FusedConv2D in the trace)."""

    @tf.custom_gradient
    def conv(x, kernel, flipped):
        def grad(dy):
            return tf.nn.conv2d(dy, flipped, strides=1, padding="SAME"), None, None

        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME"), grad

    return conv(x, kernel, flipped)


CONVS = ("transposed", "plain", "forward")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The instruction-set flags of this machine's CPU ("avx2", "avx512f", ...); empty where unknown."""
    try:
        with open(cpuinfo) as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def default_conv(device, flags=None):
    """The fastest formulation where the graph runs, a rule from measurement (bench/peers.py):

    - a GPU: "plain" Conv2D (cuDNN picks its own algorithms and layouts, TF32 on Ampere and later);
    - a CPU with AVX-512 ("avx512f" in `flags`, default cpu_flags()): "transposed", oneDNN's workaround
      measured on an AVX-512 Xeon, where its Conv2DBackpropInput ran at 0.93 × numpy's matmul rate. On a
      2-core AMD EPYC with AVX-512 (Zen 4) the three were within 5 % of each other, at 0.94-1.03 of the
      matmul rate (512 × 384, medians of 3 interleaved rounds, transposed / forward / plain: shallow
      0.699 / 0.678 / 0.696 s, whole network 1.631 / 1.567 / 1.546 s), so the rule stands for both vendors;
    - any other CPU (measured on a 2-core AVX2 AMD EPYC): "forward", because there oneDNN's backward-data
      kernel is the slow one: Conv2DBackpropInput took twice as long as a forward Conv2D of the same size
      (7.9 s against 3.9 s for the shallow objective's six convolutions at 512 × 384), so both directions
      run as forward convolutions: 0.58 × plain Conv2D's wall time per evaluation (CPU s 0.73), which was
      itself 0.68 × the transposed form's (bench/README.md, peers.py)."""
    on_gpu = device != "cpu" and bool(tf.config.list_physical_devices("GPU"))
    if on_gpu:
        return "plain"
    return "transposed" if "avx512f" in (cpu_flags() if flags is None else flags) else "forward"


class VGG:
    """The conv stack up to `deepest`, its weights held once (see _lazy_weight) and shared by every call.

    `conv` is one of CONVS (default: default_conv's choice for this machine): "transposed" (_conv3x3, oneDNN's
    workaround for AVX-512) and "forward" (_conv3x3_forward, for other CPUs) keep a second, flipped copy of
    each kernel; "plain" is tf.nn.conv2d and its own gradient, for GPUs. All compute the same sums
    (tests/vgg/test_network.py)."""

    def __init__(self, network, params, deepest, pooling="max", conv=None):
        conv = conv or default_conv("auto")
        if pooling not in POOLINGS:
            raise UserError(f"unknown pooling {pooling!r}; use max or avg")
        if conv not in CONVS:
            raise ValueError(f"unknown convolution {conv!r}")
        names = conv_layers(network)
        self.layers = names[: names.index(deepest) + 1]
        self.pooling, self.conv = pooling, conv
        self._params = {}
        for name in self.layers:
            kernel, bias = params[name]
            if name == names[0]:
                # The caffe preprocessing's RGB->BGR swap, folded into the first kernel's input channels.
                kernel = kernel[:, :, ::-1, :]
            flipped = _lazy_weight(kernel, f"{name}_flipped", flip=True) if conv != "plain" else None
            self._params[name] = (_lazy_weight(kernel, f"{name}_kernel"), _lazy_weight(bias, f"{name}_bias"),
                                  flipped)

    def __call__(self, rgb):
        """{layer: activation after ReLU} for an RGB 0..255 batch (N, H, W, 3)."""
        x = rgb - tf.constant(CAFFE_MEAN_BGR[::-1].copy())
        features = {}
        for name in self.layers:
            if name.endswith("_conv1") and name != self.layers[0]:
                pool = tf.nn.max_pool2d if self.pooling == "max" else tf.nn.avg_pool2d
                x = pool(x, ksize=2, strides=2, padding="VALID")
            kernel, bias, flipped = self._params[name]
            if self.conv == "transposed":
                y = _conv3x3(x, kernel, flipped)
            elif self.conv == "forward":
                y = _conv3x3_forward(x, kernel, flipped)
            else:
                y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
            x = tf.nn.relu(tf.nn.bias_add(y, bias))
            features[name] = x
        return features


class FeatureProbe:
    """Activations of whole images (no gradient), from a VGG in a graph and session of its own.

    For measuring a network or an image rather than optimising one: the image size may change between
    calls (the placeholder has no fixed shape), and the weights are loaded once for every call."""

    def __init__(self, network, params, layers, pooling="max", config=None):
        self.layers = [canonical_layer(network, name) for name in layers]
        deepest = deepest_layer(network, self.layers)
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="rgb")
            features = VGG(network, params, deepest, pooling)(self._image)
            self._fetch = {name: features[name] for name in self.layers}
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)

    def __call__(self, rgb):
        """{layer: (H, W, C) float32 activation after ReLU} of one RGB 0..255 image (H, W, 3)."""
        out = self._session.run(self._fetch, {self._image: np.asarray(rgb, np.float32)[None]})
        return {name: value[0] for name, value in out.items()}

    def close(self):
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
