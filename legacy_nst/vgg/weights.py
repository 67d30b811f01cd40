"""Find and read the canonical Keras VGG weight files (and `.npz` bundles of the same layers).

Resolution order: an explicit path; $LEGACY_NST_WEIGHTS_DIR; the project's `weights/`; Keras' cache
`~/.keras/models/`; otherwise a download (vgg.download) into $LEGACY_NST_WEIGHTS_DIR (or `weights/`). An
environment variable that is empty (or only blanks) counts as unset. A file read is checked against the VGG
table; load_weights_cached remembers the arrays per process.
"""
import itertools
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from .architecture import conv_layers, conv_shapes, deepest_layer
from .download import ENV_DIR, ENV_URL, download, env_value
from ..errors import UserError

KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
PROJECT_DIR = Path(__file__).resolve().parents[2] / "weights"
KERAS_CACHE = Path("~/.keras/models").expanduser()


@dataclass(frozen=True)
class CanonicalFile:
    network: str
    filename: str
    md5: str

    def url(self):
        base = (env_value(ENV_URL) or KERAS_BASE_URL).rstrip("/")
        return f"{base}/{self.network}/{self.filename}"


CANONICAL = {
    "vgg19": CanonicalFile("vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "253f8cb515780f3b799900260a226db6"),
    "vgg16": CanonicalFile("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "6d6bbae143d832006294945121d1f1fc"),
}


def search_dirs():
    """Where an already present canonical file is looked for, in order."""
    env_dir = env_value(ENV_DIR)
    dirs = [Path(env_dir).expanduser()] if env_dir else []
    if dirs and dirs[0].exists() and not dirs[0].is_dir():
        raise UserError(f"${ENV_DIR}={env_dir} is a file, not a directory; set it to the directory that "
                        "holds (or is to receive) the weight file, or pass the file itself with --weights")
    if PROJECT_DIR.is_dir():
        dirs.append(PROJECT_DIR)
    return dirs + [KERAS_CACHE]


def resolve(network, explicit=None):
    """Path of the weight file to use for `network`, downloading it if it is nowhere to be found."""
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_dir():
            raise UserError(f"--weights {explicit}: is a directory; give the path of a VGG .h5 or .npz file")
        if not path.is_file():
            raise UserError(f"--weights {explicit}: no such file; give the path of a VGG .h5 or .npz file")
        return path
    canonical = CANONICAL[network]
    dirs = search_dirs()
    for directory in dirs:
        if (directory / canonical.filename).is_file():
            return directory / canonical.filename
    target = dirs[0] if env_value(ENV_DIR) else PROJECT_DIR
    return download(canonical.url(), target / canonical.filename, canonical.md5)


def _decode(name):
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _read_h5(path, layers):
    """Follow `layer_names` / `weight_names`, so both the legacy `X_W_1:0` and Keras-2 `X/kernel:0` work."""
    out = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise UserError(f"{path}: not a Keras HDF5 weight file (no layer_names attribute)")
        weight_names = {}
        for layer in map(_decode, root.attrs["layer_names"]):
            names = [_decode(n) for n in root[layer].attrs.get("weight_names", [])]
            if names:
                weight_names[layer] = names
        for layer in layers:
            if layer in weight_names:
                kernel, bias = (np.asarray(root[layer][n], np.float32) for n in weight_names[layer][:2])
                out[layer] = (kernel, bias)
        present = list(weight_names)
    return out, present


def _read_npz(path, layers):
    with np.load(path) as bundle:
        present = sorted({key.split("/")[0] for key in bundle.files}, key=str)
        out = {layer: (bundle[f"{layer}/kernel"].astype(np.float32), bundle[f"{layer}/bias"].astype(np.float32))
               for layer in layers if f"{layer}/kernel" in bundle.files and f"{layer}/bias" in bundle.files}
    return out, present


# np.load reads a file as .npz when it starts with a zip local header or an empty archive's end record
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def _reader(path):
    """The reader a file's first bytes call for: npz (zip) or HDF5 (h5py's check, user block included)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}); check the path and permissions") from None
    if head.startswith(ZIP_SIGNATURES):
        return _read_npz
    if h5py.is_hdf5(path):
        return _read_h5
    raise UserError(f"{path} is not a VGG weight file (.h5 in Keras layout or .npz): {_what_it_is(path, head)}")


def _what_it_is(path, head):
    try:
        with Image.open(path) as image:  # the usual mistake: an image passed as --weights
            return f"it is a {image.format} image"
    except Exception:  # Pillow's plugins raise several types for bytes they do not recognise
        what = "it is empty" if not head else "its first bytes are neither HDF5 nor zip"
    return f"{what}; if it is a download, it is truncated or corrupt: download it again"


def _identify(present):
    """Which VGG a file's layer names say it is (None when a partial file cannot tell)."""
    if "block3_conv4" in present:
        return "vgg19"
    if "block4_conv1" in present or "block5_conv1" in present:
        return "vgg16"
    return None


def load_weights(path, network, layers):
    """{layer: (kernel HWIO, bias)} for every conv layer up to the deepest of `layers`, checked against the
    VGG table; deeper layers are not read, so a partial file serves any run it is deep enough for."""
    path = Path(path)
    names = conv_layers(network)
    requested = max(layers, key=names.index)
    layers = names[: names.index(requested) + 1]
    reader = _reader(path)
    try:
        params, present = reader(path, layers)
    except UserError:
        raise
    except Exception as exc:  # h5py and numpy raise many types for truncated or corrupt files
        raise UserError(f"{path}: cannot read weights ({type(exc).__name__}: {exc}); "
                        "the file is truncated or corrupt, download it again") from None
    known = [name for name in conv_layers(network) if name in present]
    if not any(name.startswith("block") and "_conv" in name for name in present):
        raise UserError(f"{path}: holds no VGG conv layers (block1_conv1 ...); is it a VGG weight file?")
    kind = _identify(present)
    if kind is not None and kind != network:
        raise UserError(f"{path}: holds {kind.upper()} weights but the run uses {network.upper()}; "
                        f"pass --network {kind} or the {network.upper()} file")
    shapes = conv_shapes(network)
    for layer in layers:
        if layer not in params:
            deepest = deepest_layer(network, known) if known else "none"
            needed_by = f", which {requested} needs" if layer != requested else ""
            raise UserError(f"{path}: has no weights for {layer}{needed_by} (deepest layer in the file: "
                            f"{deepest}); choose shallower layers or use the full weight file")
        kernel, bias = params[layer]
        if (kernel.shape, bias.shape) != shapes[layer]:
            raise UserError(f"{path}: {layer} has shapes {kernel.shape}/{bias.shape}, expected "
                            f"{shapes[layer][0]}/{shapes[layer][1]}; wrong network or corrupt file")
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise UserError(f"{path}: {layer} contains NaN or infinite values; the file is corrupt")
    return params


def present_conv_layers(path, network):
    """The conv layers of `network` that the file holds, from block1_conv1 down to the first one missing
    (blocks 1-3 for the partial VGG19); the file is checked as load_weights checks it."""
    load_weights(path, network, conv_layers(network)[:1])
    reader = _read_npz if Path(path).suffix == ".npz" else _read_h5
    present = set(reader(Path(path), [])[1])
    return list(itertools.takewhile(present.__contains__, conv_layers(network)))


_LOADED = {}  # (file identity, network, deepest layer) -> params, newest last
LOADED_MAX = 2  # a batch worker alternates between at most a VGG16 and a VGG19 file


def load_weights_cached(path, network, layers):
    """load_weights, remembered per process: a batch worker (or a notebook) running job after job reads a
    weight file once, not once per run. The key is the file's identity (resolved path, inode, size,
    modification time), so a replaced file is read again; the arrays are returned read-only, as they are
    shared between runs."""
    names = conv_layers(network)
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, network,
           max(layers, key=names.index))
    if key not in _LOADED:
        params = load_weights(path, network, layers)
        for arrays in params.values():
            for array in arrays:
                array.flags.writeable = False
        _LOADED[key] = params
        while len(_LOADED) > LOADED_MAX:
            del _LOADED[next(iter(_LOADED))]
    _LOADED[key] = _LOADED.pop(key)  # the newest entry last
    return _LOADED[key]
