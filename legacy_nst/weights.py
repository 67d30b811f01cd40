"""Find, download and read the canonical Keras VGG weight files (and `.npz` bundles of the same layers).

Resolution order: an explicit path; $LEGACY_NST_WEIGHTS_DIR; the project's `weights/`; Keras' cache
`~/.keras/models/`; otherwise a download into $LEGACY_NST_WEIGHTS_DIR (or `weights/`). A download goes to a
temporary file, is checked against the canonical md5 and only then renamed, so a file under the final name
is always whole. $LEGACY_NST_WEIGHTS_URL replaces the download base address (a mirror).
"""
import hashlib
import http.client
import itertools
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from .atomic import atomic_path
from .errors import UserError
from .architecture import conv_layers, conv_shapes, layer_depth, layer_sequence

ENV_DIR = "LEGACY_NST_WEIGHTS_DIR"
ENV_URL = "LEGACY_NST_WEIGHTS_URL"
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
PROJECT_DIR = Path(__file__).resolve().parent.parent / "weights"
KERAS_CACHE = Path("~/.keras/models").expanduser()


@dataclass(frozen=True)
class CanonicalFile:
    network: str
    filename: str
    md5: str

    def url(self):
        base = os.environ.get(ENV_URL, KERAS_BASE_URL).rstrip("/")
        return f"{base}/{self.network}/{self.filename}"


CANONICAL = {
    "vgg19": CanonicalFile("vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "253f8cb515780f3b799900260a226db6"),
    "vgg16": CanonicalFile("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "6d6bbae143d832006294945121d1f1fc"),
}


def search_dirs():
    """Where an already present canonical file is looked for, in order."""
    dirs = [Path(os.environ[ENV_DIR]).expanduser()] if os.environ.get(ENV_DIR) else []
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
    for directory in search_dirs():
        if (directory / canonical.filename).is_file():
            return directory / canonical.filename
    target = search_dirs()[0] if os.environ.get(ENV_DIR) else PROJECT_DIR
    return download(canonical.url(), target / canonical.filename, canonical.md5)


def md5sum(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url, dest, md5):
    """Fetch `url` to `dest` with a progress bar; nothing lands under `dest` unless the md5 matches."""
    dest = Path(dest)
    hint = (f"put {dest.name} (md5 {md5}) in {dest.parent} or in ${ENV_DIR}, "
            f"or pass --weights PATH")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                received = 0
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        received += len(block)
                        bar.update(len(block))
            if total is not None and received != total:  # urllib does not raise on a short body
                raise UserError(f"download of {url} incomplete: got {received} of {total} bytes "
                                f"(connection dropped); nothing saved; {hint}")
            got = md5sum(tmp)
            if got != md5:
                raise UserError(f"downloaded {url} has md5 {got}, expected {md5}: refused; {hint}")
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        # HTTPException: IncompleteRead of a chunked body, a garbled status line; ValueError: a bad URL
        reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                  else getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}")
        raise UserError(f"could not download {url} ({reason}); {hint}") from None
    return dest


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
    layers = names[: max(names.index(layer) for layer in layers) + 1]
    reader = _read_npz if path.suffix == ".npz" else _read_h5
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
            deepest = max(known, key=lambda n: layer_depth(network, n)) if known else "none"
            raise UserError(f"{path}: has no weights for {layer} (deepest layer in the file: {deepest}); "
                            "choose shallower layers or use the full weight file")
        kernel, bias = params[layer]
        if (kernel.shape, bias.shape) != shapes[layer]:
            raise UserError(f"{path}: {layer} has shapes {kernel.shape}/{bias.shape}, expected "
                            f"{shapes[layer][0]}/{shapes[layer][1]}; wrong network or corrupt file")
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise UserError(f"{path}: {layer} contains NaN or infinite values; the file is corrupt")
    return params


def synthetic_weights(network, seed=0, layers=None):
    """Random He-scaled weights of the right shapes, for tests and benchmarks where the real ones are absent."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (kshape, bshape) in conv_shapes(network).items():
        if layers is None or name in layers:
            fan_in = kshape[0] * kshape[1] * kshape[2]
            out[name] = (rng.normal(0, np.sqrt(2.0 / fan_in), kshape).astype(np.float32),
                         rng.normal(0, 0.01, bshape).astype(np.float32))
    return out


def save_keras_h5(path, network, params, spelling="legacy"):
    """Write `params` in the canonical Keras HDF5 layout (pool and input layers included, weightless).

    spelling="legacy" names datasets `block1_conv1_W_1:0`, as the canonical files do; "keras2" nests
    them as `block1_conv1/kernel:0`, as newer Keras saves do."""
    names = ["input_1"] + layer_sequence(network)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        # np.array of bytes: fixed-length byte strings as in the canonical files (a plain list of bytes
        # would be stored by h5py 3 as variable-length str)
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            group = f.create_group(name)
            if name not in params:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            wnames = ([f"{name}_W_1:0", f"{name}_b_1:0"] if spelling == "legacy"
                      else [f"{name}/kernel:0", f"{name}/bias:0"])
            for wname, value in zip(wnames, params[name]):
                group.create_dataset(wname, data=value)
            group.attrs["weight_names"] = np.array([n.encode() for n in wnames])


def present_conv_layers(path, network):
    """The conv layers of `network` that the file holds, from block1_conv1 down to the first one missing
    (blocks 1-3 for the partial VGG19); the file is checked as load_weights checks it."""
    load_weights(path, network, conv_layers(network)[:1])
    reader = _read_npz if Path(path).suffix == ".npz" else _read_h5
    present = set(reader(Path(path), [])[1])
    return list(itertools.takewhile(present.__contains__, conv_layers(network)))
