"""VGG16 and VGG19 as a small table: layer names in order, kernel shapes, and the names users type.

No TensorFlow here, so argument checking and `--list-recipes` stay fast; network.py builds the graph.
"""
import difflib
import re

import numpy as np

from ..errors import UserError

BLOCK_SIZES = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
POOLINGS = ("max", "avg")


def layer_sequence(network):
    """Keras layer names in order, pools included: block1_conv1, block1_conv2, block1_pool, ..."""
    names = []
    for block, size in enumerate(BLOCK_SIZES[network], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, size + 1)] + [f"block{block}_pool"]
    return names


def conv_layers(network):
    return [name for name in layer_sequence(network) if "_conv" in name]


def conv_shapes(network):
    """{layer: (kernel shape HWIO, bias shape)} as in the Keras weight files."""
    shapes, channels_in = {}, 3
    for name in conv_layers(network):
        channels_out = BLOCK_CHANNELS[int(name[5]) - 1]
        shapes[name] = ((3, 3, channels_in, channels_out), (channels_out,))
        channels_in = channels_out
    return shapes


def layer_depth(network, name):
    return conv_layers(network).index(name)


def deepest_layer(network, layers):
    """The layer of `layers` furthest into the network: where a graph reading them can stop."""
    return max(layers, key=lambda name: layer_depth(network, name))


def canonical_layer(network, name):
    """Keras name for `block4_conv2`, `conv4_2`, `relu4_2`, or a 0-based conv index (seed 002's ids)."""
    text = str(name).strip()
    names = conv_layers(network)
    match = re.fullmatch(r"(?:conv|relu)(\d)_(\d)", text)
    if match:
        text = f"block{match.group(1)}_conv{match.group(2)}"
    elif re.fullmatch(r"\d+", text):
        if int(text) >= len(names):
            raise UserError(f"layer index {text} is out of range: {network} has conv layers 0..{len(names) - 1}")
        return names[int(text)]
    if text in names:
        return text
    close = difflib.get_close_matches(text, names + [f"conv{n[5]}_{n[-1]}" for n in names], n=1)
    hint = f"did you mean {close[0]}?" if close else f"use names like {names[0]} or conv1_1"
    raise UserError(f"unknown {network} layer {name!r}; {hint}")


def min_input_side(network, layers):
    """Smallest image side that still leaves the deepest layer at least one pixel: one halving per pool."""
    deepest_block = max(int(canonical_layer(network, name)[5]) for name in layers)
    return 2 ** (deepest_block - 1)


def pools_before(layer):
    """How many 2 × 2 pools precede a conv layer (block N has N − 1): features are 1/2^that of the image."""
    return int(layer[5]) - 1


def halo(network, deepest):
    """(halo, align) in image pixels: how far wrong features reach in from a cut edge, and the pooling grid.

    VGG19 to block5_conv2: 6 wrong positions at 1/16 scale = 96 px on a grid of 16; to block3_conv2
    (the preview): 4 at 1/4 = 16 px on a grid of 4."""
    wrong, level = 0, 0
    for name in layer_sequence(network):
        if name.endswith("_pool"):
            wrong, level = -(-wrong // 2), level + 1
        else:
            wrong += 1
        if name == deepest:
            return wrong << level, 1 << level
    raise ValueError(f"{deepest} is not a {network} layer")
