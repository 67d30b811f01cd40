"""The paper's unit-mean VGG: every conv filter's mean activation over a set of images is 1.

Gatys et al. (CVPR 2016, and the NIPS 2015 texture paper): "We normalized the network by scaling the
weights such that the mean activation of each convolutional filter over images and positions is equal to
one. Such re-scaling can be done for the VGG network without changing its output, because it contains only
rectifying linear activation functions and no normalization or pooling over feature maps."

With m_l the mean (over images and positions, after the ReLU) of layer l's filters in the ORIGINAL network,
layer l's kernel and bias are divided by m_l on their output filters and layer l+1's kernel is multiplied by
m_l on its input channels. ReLU is positively homogeneous and max and average pooling commute with a
positive per-channel scale, so the rescaled network computes exactly a'_l = a_l / m_l at every layer: each
filter's mean is then 1, the classifier behind the last conv layer (which would absorb the last m) would
see the same input, and what changes are the features the losses read: a Gram entry G_ij scales by
1/(m_i m_j) and a content difference in channel c by 1/m_c. That is what gives the paper's α/β its meaning.

Measuring m_l layer by layer on the already rescaled layers before it gives the same m_l (their outputs
differ from the original ones only by the scale the next kernel undoes), so one pass of the original
network measures every layer; the tests measure the rescaled network again and find 1.

Choices the paper does not state: each image is resized to `size` on its long side (default 256, the side
ImageNet images are commonly resized to before the 224 crop; None keeps each image's own size) with
Lanczos, and every position of every image counts once (a larger image weighs more). A dead filter (mean 0
over the whole set: its ReLU never fires) keeps scale 1, since no scale can give it mean 1.

The means are cached beside the weights file as `<weights>.norm-<fingerprint>.npz`; the fingerprint hashes
the weights file's size and md5 (the whole file: about 0.2 s for the 80 MB VGG19 file, and a copied file
keeps its cache), the network, the pooling, the sizing, and the sorted absolute paths of the images with
their sizes and modification times (hashing ImageNet's 6.4 GB validation set on every run would cost
more than measuring it once). Any change gives a new name, so a stale cache is never read.
"""
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .. import engine, images
from ..atomic import atomic_path
from ..errors import UserError
from ..vgg.architecture import conv_layers
from ..vgg.download import md5sum

CACHE_VERSION = 1
DEFAULT_SIZE = 256
RESAMPLE = "lanczos"


def image_files(paths):
    """Sorted absolute paths of the images named by `paths`: a directory (its image files, by the
    extensions Pillow knows; not recursive), one file, or a list of either."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    known = Image.registered_extensions()
    files = set()
    for path in map(Path, paths):
        if path.is_dir():
            files.update(p.resolve() for p in path.iterdir() if p.is_file() and p.suffix.lower() in known)
        elif path.is_file():
            files.add(path.resolve())
        else:
            raise UserError(f"{path}: no such file or directory; give the images to normalise the network on")
    if not files:
        raise UserError(f"{', '.join(map(str, paths))}: no image files to normalise the network on; "
                        "give a directory of JPEG/PNG images")
    return sorted(files)


def mean_activations(params, network, pooling, images_rgb, layers, config=None):
    """{layer: (C,) float64} mean activation (after ReLU) of each filter over every position of every image
    (RGB 0..255 arrays of any sizes) in `images_rgb`."""
    sums, counts = {}, {}
    with engine.FeatureProbe(network, params, layers, pooling, config) as probe:
        for rgb in images_rgb:
            for layer, value in probe(rgb).items():
                # float64 over the whole set: a float32 running sum over many images loses digits
                sums[layer] = sums.get(layer, 0.0) + value.sum(axis=(0, 1), dtype=np.float64)
                counts[layer] = counts.get(layer, 0) + value.shape[0] * value.shape[1]
    if not counts:
        raise ValueError("mean_activations needs at least one image")
    return {layer: sums[layer] / counts[layer] for layer in probe.layers}


def rescaled(params, network, means):
    """`params` with each conv layer's filters divided by its mean activation and the next layer's input
    channels multiplied by it (see the module's docstring); dead filters (mean 0) keep scale 1."""
    out, previous = {}, np.ones(3)
    for layer in (name for name in conv_layers(network) if name in params):
        kernel, bias = params[layer]
        scale = np.where(means[layer] > 0, means[layer], 1.0)
        out[layer] = ((kernel * (previous[:, None] / scale[None, :])).astype(np.float32),
                      (bias / scale).astype(np.float32))
        previous = scale
    return out


def fingerprint(weights_path, network, pooling, files, size):
    """16 hex digits naming everything the means depend on (see the module's docstring)."""
    weights_path = Path(weights_path)
    record = {
        "version": CACHE_VERSION, "network": network, "pooling": pooling, "size": size, "resample": RESAMPLE,
        "weights": [weights_path.stat().st_size, md5sum(weights_path)],
        "images": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files],
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(weights_path, key):
    weights_path = Path(weights_path)
    return weights_path.with_name(f"{weights_path.name}.norm-{key}.npz")


def _read_cache(path, params, layers):
    """(the cached means of `layers`, None) or (None, why the file cannot be used); (None, None) when absent.
    A usable cache holds, for every layer, one finite non-negative mean per filter of that layer, not all 0."""
    if not os.path.lexists(path):
        return None, None
    try:
        with np.load(path, allow_pickle=False) as cache:
            means = {}
            for layer in layers:
                if f"mean/{layer}" not in cache.files:
                    return None, f"it has no means for {layer}"
                means[layer] = cache[f"mean/{layer}"].astype(np.float64)
    except Exception as exc:  # a truncated or foreign file: zipfile, numpy and the OS raise many types
        return None, f"unreadable ({type(exc).__name__})"
    for layer, value in means.items():
        filters = params[layer][1].shape
        if value.shape != filters:
            return None, f"its means for {layer} have shape {value.shape}, the layer has {filters[0]} filters"
        if not np.isfinite(value).all() or (value < 0).any():
            return None, f"its means for {layer} are not finite non-negative numbers"
        if not (value > 0).any():  # a dead filter's mean is 0, a whole layer's never (it scaled losses 1e9-fold)
            return None, f"its means for {layer} are all 0, which no measurement gives"
    return means, None


def _write_cache(path, means):
    """Write atomically; a directory we cannot write to (a shared, read-only weights folder) costs a
    warning and a measurement per run, never the run."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{f"mean/{layer}": value for layer, value in means.items()})
    except OSError as exc:
        warnings.warn(f"{path}: cannot cache the normalisation ({exc}); it will be measured again next run")


def sized_images(files, size):
    """Each file loaded and resized to `size` on its long side (None: its own size), one at a time."""
    for path in files:
        rgb = images.load_image(str(path))
        yield images.resize(rgb, images.target_shape(rgb.shape, size, "long-side"), RESAMPLE)


def normalised_weights(params, network, pooling, image_paths, weights_path, size=DEFAULT_SIZE, config=None):
    """`params` rescaled so that every conv filter's mean activation over `image_paths` (a directory or a
    list of files) is 1, measured with `pooling` on images sized to `size` (long side; None: own size).
    The means are read from, or written to, the cache beside `weights_path`."""
    files = image_files(image_paths)
    layers = [name for name in conv_layers(network) if name in params]
    path = cache_path(weights_path, fingerprint(weights_path, network, pooling, files, size))
    means, bad = _read_cache(path, params, layers)
    if bad:
        warnings.warn(f"{path}: a bad normalisation cache ({bad}); discarded, measuring the means again")
        try:
            os.remove(path)
        except OSError:
            pass  # a read-only folder: _write_cache says so
    if means is None:
        # a bar on a terminal only (disable=None): a log or a pipe gets no carriage-return lines
        progress = tqdm(files, desc="normalising VGG: mean activations", unit="image", leave=False, disable=None)
        means = mean_activations(params, network, pooling, sized_images(progress, size), layers, config)
        _write_cache(path, means)
    return rescaled(params, network, means)
