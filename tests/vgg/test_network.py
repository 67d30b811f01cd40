"""The VGG graph against Keras' own VGG16/VGG19, layer naming, truncation and the minimum input size."""
import numpy as np
import pytest
from support import synthetic_weights

from legacy_nst.engine import network
from legacy_nst.engine.runtime import tf
from legacy_nst.errors import UserError
from legacy_nst.vgg import architecture

SIDE = 32

# Seed 002's 13 VGG16 layer ids, as listed in RECIPES.md.
VGG16_IDS = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
             "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
             "block5_conv3"]


def rgb_batch(n=2, side=SIDE, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 255.0, (n, side, side, 3)).astype(np.float32)


def our_features(net, params, rgb, deepest=None, pooling="max"):
    """Every conv activation of our graph VGG for an RGB 0..255 batch, through a placeholder and a Session."""
    deepest = deepest or architecture.conv_layers(net)[-1]
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (None,) + rgb.shape[1:], name="rgb")
        vgg = network.VGG(net, params, deepest, pooling)
        features = vgg(image)
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(features, {image: rgb})


def keras_features(model, layers, batch):
    import keras

    probe = keras.Model(model.input, [model.get_layer(name).output for name in layers])
    return dict(zip(layers, (np.asarray(a) for a in probe(batch))))


def set_conv_weights(model, params):
    for name, (kernel, bias) in params.items():
        model.get_layer(name).set_weights([kernel, bias])


def assert_close_activation(ours, theirs, name):
    scale = float(np.abs(theirs).max())
    assert scale > 0, f"{name}: dead layer, the comparison would be empty"
    # measured 9.9e-7 plain / 9.0e-7 transposed of the scale (AVX2 EPYC, every caller); passed on AVX-512 earlier
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-5 * scale, err_msg=name)


@pytest.mark.parametrize("net", ["vgg19", "vgg16"])
def test_matches_keras_applications_vgg(net):
    """Raw RGB into our graph == keras preprocess_input (RGB->BGR, minus the mean) into Keras' VGG, per conv."""
    import keras

    app, module = {"vgg19": (keras.applications.VGG19, keras.applications.vgg19),
                   "vgg16": (keras.applications.VGG16, keras.applications.vgg16)}[net]
    params = synthetic_weights(net, seed=7)
    model = app(weights=None, include_top=False, input_shape=(SIDE, SIDE, 3))
    set_conv_weights(model, params)
    rgb = rgb_batch()
    layers = architecture.conv_layers(net)
    theirs = keras_features(model, layers, module.preprocess_input(rgb.copy()))
    ours = our_features(net, params, rgb)
    assert sorted(ours) == sorted(layers)
    for name in layers:
        assert ours[name].shape == theirs[name].shape, name
        assert_close_activation(ours[name], theirs[name], name)


def test_avg_pooling_matches_keras_model_with_average_pools():
    """pooling='avg': a Keras VGG19 whose max pools are AveragePooling2D(2, 2)."""
    import keras

    net = "vgg19"
    params = synthetic_weights(net, seed=11)
    inputs = keras.Input((SIDE, SIDE, 3))
    x = inputs
    for name in architecture.layer_sequence(net):
        if name.endswith("_pool"):
            x = keras.layers.AveragePooling2D(2, strides=2, name=name)(x)
        else:
            channels = params[name][1].shape[0]
            x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=name)(x)
    model = keras.Model(inputs, x)
    set_conv_weights(model, params)
    rgb = rgb_batch(seed=3)
    layers = architecture.conv_layers(net)
    theirs = keras_features(model, layers, keras.applications.vgg19.preprocess_input(rgb.copy()))
    ours = our_features(net, params, rgb, pooling="avg")
    for name in layers:
        assert_close_activation(ours[name], theirs[name], name)
    # ...and avg really differs from max (the option is not ignored).
    ours_max = our_features(net, params, rgb, deepest="block2_conv1", pooling="max")
    assert not np.allclose(ours_max["block2_conv1"], ours["block2_conv1"], rtol=1e-3)


def test_truncated_network_equals_prefix_of_full_network():
    params = synthetic_weights("vgg19", seed=2)
    rgb = rgb_batch(n=1, side=16)
    full = our_features("vgg19", params, rgb, deepest="block4_conv1")
    short = our_features("vgg19", params, rgb, deepest="block3_conv1")
    assert list(short) == architecture.conv_layers("vgg19")[:5]
    for name, value in short.items():
        np.testing.assert_array_equal(value, full[name])


def test_unknown_pooling_is_a_user_error():
    with pytest.raises(UserError, match="pooling"):
        network.VGG("vgg19", synthetic_weights("vgg19", layers={"block1_conv1"}), "block1_conv1", "min")


# ---------------------------------------------------------------------------------------------- naming


@pytest.mark.parametrize("net", ["vgg19", "vgg16"])
@pytest.mark.parametrize("name", ["block4_conv2", "conv4_2", "relu4_2", " block4_conv2 "])
def test_canonical_layer_spellings(net, name):
    assert architecture.canonical_layer(net, name) == "block4_conv2"


def test_index_counts_conv_layers_of_that_network():
    assert architecture.canonical_layer("vgg16", 8) == "block4_conv2"
    assert architecture.canonical_layer("vgg19", 8) == "block4_conv1"
    assert architecture.canonical_layer("vgg19", "7") == "block3_conv4"


def test_vgg16_ids_are_seed_002s_list():
    assert architecture.conv_layers("vgg16") == VGG16_IDS
    assert [architecture.canonical_layer("vgg16", i) for i in range(13)] == VGG16_IDS
    assert [architecture.canonical_layer("vgg16", str(i)) for i in range(13)] == VGG16_IDS
    # the hvass recipe's content id [4] is block3_conv1
    assert architecture.canonical_layer("vgg16", 4) == "block3_conv1"


def test_vgg19_conv_order():
    expected = [f"block{b}_conv{i}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for i in range(1, n + 1)]
    assert architecture.conv_layers("vgg19") == expected
    assert [architecture.canonical_layer("vgg19", i) for i in range(16)] == expected


@pytest.mark.parametrize("net, index", [("vgg16", 13), ("vgg19", 16), ("vgg16", 99)])
def test_index_out_of_range(net, index):
    with pytest.raises(UserError, match="out of range"):
        architecture.canonical_layer(net, index)


@pytest.mark.parametrize("net, name, suggestion", [
    ("vgg19", "blok4_conv2", "block4_conv2"),
    ("vgg19", "block4_conv5", "block4_conv"),
    ("vgg16", "block3_conv4", "block3_conv"),  # exists in VGG19 only
    ("vgg16", "conv3_4", "block3_conv"),
    ("vgg19", "conv4_22", "conv4_2"),
])
def test_unknown_layer_suggests(net, name, suggestion):
    with pytest.raises(UserError) as info:
        architecture.canonical_layer(net, name)
    message = str(info.value)
    assert "did you mean" in message
    assert suggestion in message.split("did you mean", 1)[1]
    assert repr(name) in message or name in message


@pytest.mark.parametrize("name", ["pool5", "", "fc7", "-1"])
def test_unrecognisable_layer_is_a_user_error(name):
    with pytest.raises(UserError):
        architecture.canonical_layer("vgg19", name)


# ----------------------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("net", ["vgg19", "vgg16"])
def test_vgg_builds_only_the_convs_it_needs(net):
    needed = architecture.conv_layers(net)[:5]
    # only the needed weights are given: a deeper lookup would be a KeyError
    params = synthetic_weights(net, seed=0, layers=set(needed))
    graph = tf.Graph()
    with graph.as_default():
        vgg = network.VGG(net, params, "block3_conv1")
        features = vgg(tf.compat.v1.placeholder(tf.float32, (1, 16, 16, 3)))
    assert vgg.layers == needed
    assert list(features) == needed
    kernels = sorted(op.name for op in graph.get_operations() if op.name.endswith("_kernel"))
    assert kernels == sorted(f"{name}_kernel" for name in needed)
    # the forward conv runs as a transposed conv of the flipped kernel (network._conv3x3): one per layer
    convs = [op for op in graph.get_operations() if op.type in ("Conv2D", "Conv2DBackpropInput")]
    assert len(convs) == 5


def test_vgg_shares_weights_between_calls():
    params = synthetic_weights("vgg19", seed=0, layers={"block1_conv1", "block1_conv2"})
    graph = tf.Graph()
    with graph.as_default():
        vgg = network.VGG("vgg19", params, "block1_conv2")
        vgg(tf.compat.v1.placeholder(tf.float32, (1, 8, 8, 3)))
        vgg(tf.compat.v1.placeholder(tf.float32, (1, None, None, 3)))
    holders = ("Const", "VarHandleOp")  # graph constants or variables: either way one per layer
    assert sum(op.type in holders and op.name.endswith("_kernel") for op in graph.get_operations()) == 2


# ------------------------------------------------------------------------------------- min input side


@pytest.mark.parametrize("net, layers, side", [
    ("vgg19", ["block1_conv1"], 1),
    ("vgg19", ["block1_conv2", "conv2_1"], 2),
    ("vgg19", ["block3_conv1", "relu1_1"], 4),
    ("vgg19", ["block4_conv2"], 8),
    ("vgg19", ["block5_conv2", "block1_conv1"], 16),
    ("vgg16", ["12"], 16),
    ("vgg16", [4], 4),
])
def test_min_input_side_values(net, layers, side):
    assert architecture.min_input_side(net, layers) == side


@pytest.mark.parametrize("net", ["vgg19", "vgg16"])
def test_min_input_side_is_the_true_minimum(net):
    """At the minimum side every layer up to the deepest has ≥ 1 pixel; one pixel less loses the deepest."""
    params = synthetic_weights(net, seed=0)
    for deepest in [f"block{b}_conv1" for b in range(1, 6)]:
        side = architecture.min_input_side(net, [deepest])
        graph = tf.Graph()
        with graph.as_default():
            vgg = network.VGG(net, params, deepest)
            features = vgg(tf.compat.v1.placeholder(tf.float32, (1, side, side, 3)))
            assert all(min(f.shape.as_list()[1:3]) >= 1 for f in features.values()), deepest
            if side > 1:
                try:
                    smaller = vgg(tf.compat.v1.placeholder(tf.float32, (1, side - 1, side - 1, 3)))
                except ValueError:  # static shape inference refuses a negative size
                    continue
                assert min(smaller[deepest].shape.as_list()[1:3]) == 0, deepest


def test_min_input_side_rejects_unknown_layers():
    with pytest.raises(UserError):
        architecture.min_input_side("vgg16", ["block3_conv4"])


def test_every_convolution_formulation_computes_what_plain_conv2d_does():
    """The formulations default_conv chooses between (the transposed one on AVX-512, two forward Conv2Ds
    elsewhere, plain Conv2D on a GPU), here all on the CPU: the same activations and the same image gradient
    as tf.nn.conv2d with its own gradient, so every machine optimises the same objective. The chosen one for
    this machine is among them."""
    params = synthetic_weights("vgg19", seed=4)
    rgb = rgb_batch(n=1, side=24)
    out = {}
    for conv in network.CONVS:
        graph = tf.Graph()
        with graph.as_default():
            image = tf.compat.v1.placeholder(tf.float32, rgb.shape)
            features = network.VGG("vgg19", params, "block3_conv2", "max", conv=conv)(image)
            loss = tf.add_n([tf.reduce_sum(tf.square(f)) for f in features.values()])
            fetch = (features, tf.gradients(loss, image)[0])
            with tf.compat.v1.Session(graph=graph) as session:
                out[conv] = session.run(fetch, {image: rgb})
    assert network.default_conv("cpu") in out
    fa, ga = out["plain"]
    for conv in ("transposed", "forward"):
        fb, gb = out[conv]
        for name in fa:
            assert_close_activation(fb[name], fa[name], name)
        # measured 2.1e-7 of the scale, transposed against plain (AVX2 EPYC); passed on AVX-512 in earlier rounds
        np.testing.assert_allclose(gb, ga, rtol=1e-3, atol=1e-3 * np.abs(ga).max(), err_msg=conv)


def test_the_convolution_formulation_follows_the_cpu_flags(tmp_path):
    """AVX-512 keeps the transposed workaround it was tuned on; other CPUs (AVX2, measured) and CPUs whose
    flags cannot be read get forward Conv2D both ways; a GPU gets plain Conv2D."""
    assert network.default_conv("cpu", flags=frozenset({"sse4_2", "avx2", "avx512f", "avx512bw"})) == "transposed"
    assert network.default_conv("cpu", flags=frozenset({"sse4_2", "avx2", "fma"})) == "forward"
    assert network.default_conv("cpu", flags=frozenset()) == "forward"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\n")
    assert network.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert network.cpu_flags(tmp_path / "absent") == frozenset()
    expected = "transposed" if "avx512f" in network.cpu_flags() else "forward"
    assert network.default_conv("cpu") == expected
    assert network.default_conv("auto") == ("plain" if tf.config.list_physical_devices("GPU") else expected)
