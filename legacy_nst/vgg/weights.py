"""Find, download and read the canonical Keras VGG weight files (and `.npz` bundles of the same layers).

Resolution order: an explicit path; $LEGACY_NST_WEIGHTS_DIR; the project's `weights/`; Keras' cache
`~/.keras/models/`; otherwise a download into $LEGACY_NST_WEIGHTS_DIR (or `weights/`). A download goes to a
temporary file, is checked against the canonical md5 and only then renamed, so a file under the final name
is always whole. $LEGACY_NST_WEIGHTS_URL replaces the download base address (a mirror; http or https only).
An environment variable that is empty (or only blanks) counts as unset.

Downloads give up: past $LEGACY_NST_DOWNLOAD_DEADLINE seconds in all, or when fewer than
$LEGACY_NST_DOWNLOAD_MIN_RATE bytes/s arrived over the last RATE_WINDOW seconds (0 turns that check off);
one read waits at most min(RATE_WINDOW, deadline) seconds, which bounds how far a silent server overruns.
Nothing is left behind: not the temporary file (also on SIGTERM), not the directories the download made.
A temporary file left by a download killed outright (kill -9, power loss) is named
`.{stem}.{host}-{pid}.{token}.part.h5`; the next download of the same file removes it when it is provably
stale: written on this host by a pid that no longer runs, or not modified for longer than the deadline (its
download has given up by then, unless it was given a longer deadline). Otherwise it is kept: another host's
pid means nothing here (a shared weights directory), and a live pid may be a reused one, so only age decides.
"""
import contextlib
import hashlib
import http.client
import itertools
import math
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from .architecture import conv_layers, conv_shapes, deepest_layer, layer_sequence
from ..atomic import atomic_path, temp_stem
from ..errors import UserError

ENV_DIR = "LEGACY_NST_WEIGHTS_DIR"
ENV_URL = "LEGACY_NST_WEIGHTS_URL"
ENV_DEADLINE = "LEGACY_NST_DOWNLOAD_DEADLINE"
ENV_MIN_RATE = "LEGACY_NST_DOWNLOAD_MIN_RATE"
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
PROJECT_DIR = Path(__file__).resolve().parents[2] / "weights"
KERAS_CACHE = Path("~/.keras/models").expanduser()
# Sized for the 80 MB VGG19 file: 50 kB/s (0.4 Mbit/s) sustained delivers it in 1600 s, inside the 30-minute
# deadline, so the rate check stops within a minute a connection that could not finish in time anyway.
DEFAULT_DEADLINE = 1800.0
DEFAULT_MIN_RATE = 50_000.0
RATE_WINDOW = 60.0  # seconds the rate is measured over; also the socket timeout, so silence counts as 0 B/s
CHUNK = 1 << 16  # read1 returns as soon as any bytes arrived (up to this many), so a trickle is measured
HOST_TAG = hashlib.md5(socket.gethostname().encode()).hexdigest()[:8]  # pids are only comparable per host


def _env(name):
    """The variable's value, or None when it is unset, empty or only blanks."""
    value = os.environ.get(name, "")
    return value if value.strip() else None


@dataclass(frozen=True)
class CanonicalFile:
    network: str
    filename: str
    md5: str

    def url(self):
        base = (_env(ENV_URL) or KERAS_BASE_URL).rstrip("/")
        return f"{base}/{self.network}/{self.filename}"


CANONICAL = {
    "vgg19": CanonicalFile("vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "253f8cb515780f3b799900260a226db6"),
    "vgg16": CanonicalFile("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "6d6bbae143d832006294945121d1f1fc"),
}


def search_dirs():
    """Where an already present canonical file is looked for, in order."""
    env_dir = _env(ENV_DIR)
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
    target = dirs[0] if _env(ENV_DIR) else PROJECT_DIR
    return download(canonical.url(), target / canonical.filename, canonical.md5)


def md5sum(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Limits:
    deadline: float  # seconds for the whole fetch
    min_rate: float  # bytes/s over the last `window` seconds; 0: no rate check
    window: float

    @classmethod
    def from_env(cls):
        return cls(_env_number(ENV_DEADLINE, DEFAULT_DEADLINE, "seconds", zero_ok=False),
                   _env_number(ENV_MIN_RATE, DEFAULT_MIN_RATE, "bytes/s", zero_ok=True), RATE_WINDOW)


def _env_number(name, default, unit, zero_ok):
    text = _env(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "a finite number >= 0" if zero_ok else "a finite number > 0"
        raise UserError(f"${name}={text}: expected {kind} ({unit}); unset it for the default {default:g}")
    return value


def download(url, dest, md5):
    """Fetch `url` (http or https only) to `dest` with a progress bar, within Limits.from_env(); nothing lands
    under `dest` unless the md5 matches, and a failure leaves neither a temporary file nor new directories."""
    dest = Path(dest)
    hint = (f"put {dest.name} (md5 {md5}) in {dest.parent} or in ${ENV_DIR}, "
            f"or pass --weights PATH")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise UserError(f"refusing to download {url}: only http:// and https:// addresses are fetched "
                        f"(check ${ENV_URL}); {hint}")
    limits = Limits.from_env()
    with _sigterm_cleans_up(url):
        created = []
        try:
            _make_dirs(dest.parent, created)
            remove_stale_temps(dest, limits.deadline)
            with atomic_path(dest, tag=f"{HOST_TAG}-{os.getpid()}") as tmp:
                received, total = _fetch(url, tmp, dest.name, limits, hint)
                if total is not None and received != total:  # urllib does not raise on a short body
                    raise UserError(f"download of {url} incomplete: got {received} of {total} bytes "
                                    f"(connection dropped); nothing saved; {hint}")
                got = md5sum(tmp)
                if got != md5:
                    raise UserError(f"downloaded {url} has md5 {got}, expected {md5}: refused; {hint}")
        except BaseException as exc:  # SIGTERM (_Terminated) and Ctrl-C included
            _remove_dirs(created)
            # HTTPException: IncompleteRead of a chunked body, a garbled status line; ValueError: a bad URL
            if isinstance(exc, (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)):
                raise UserError(f"could not download {url} ({_reason(exc)}); {hint}") from None
            raise
    return dest


def _reason(exc):
    if isinstance(exc, urllib.error.HTTPError):
        if str(exc.reason).startswith(urllib.request.HTTPRedirectHandler.inf_msg):
            return f"redirect loop: HTTP {exc.code} to addresses already visited or too many redirects"
        reason = f"HTTP {exc.code} {exc.reason}"
    else:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    return " ".join(str(reason).split())  # the message is one line whatever the server or OS said


def _opener():
    """urllib without its file:, ftp: and data: handlers, so no redirect can lead off http(s) either."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _fetch(url, tmp, name, limits, hint):
    """Stream `url` into `tmp`, showing progress as `name`; returns (bytes received, Content-Length or
    None). Gives up (UserError) past the deadline or below the minimum rate."""
    start = time.monotonic()
    samples = deque([(start, 0)])  # (time, bytes so far), thinned to ~64 per window
    received = 0

    def give_up(why):
        return UserError(f"download of {url} gave up after {time.monotonic() - start:.1f} s with "
                         f"{received} bytes: {why}; nothing saved; {hint}")

    def check(now):
        if now - start > limits.deadline:
            raise give_up(f"past the {limits.deadline:g} s deadline (${ENV_DEADLINE})")
        if now - samples[-1][0] >= limits.window / 64:
            samples.append((now, received))
        while len(samples) > 1 and samples[1][0] <= now - limits.window:
            samples.popleft()
        then, before = samples[0]
        if now - then >= limits.window and (received - before) / (now - then) < limits.min_rate:
            raise give_up(f"{(received - before) / (now - then):.0f} B/s over the last {now - then:.1f} s, "
                          f"below the minimum {limits.min_rate:g} B/s (${ENV_MIN_RATE})")

    timeout = min(limits.window, limits.deadline)
    with _opener().open(url, timeout=timeout) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}") as bar:
            while True:
                try:
                    block = response.read1(CHUNK)
                except TimeoutError:
                    check(time.monotonic())
                    raise give_up(f"no data for {timeout:g} s") from None
                if not block:
                    return received, total
                out.write(block)
                received += len(block)
                bar.update(len(block))
                check(time.monotonic())


class _Terminated(BaseException):
    """SIGTERM during a download: unwinds it so the temporary file and new directories are removed."""


@contextlib.contextmanager
def _sigterm_cleans_up(url):
    """Within the block SIGTERM raises _Terminated; after the cleanup the signal goes on to the handler that
    was there before (the default one ends the process with SIGTERM, as it would have). Only the main
    thread can set handlers, and an ignored SIGTERM stays ignored; then the block runs unchanged."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield
        return

    def on_sigterm(signum, frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)  # the previous handler runs (or the process ends) right here
        raise UserError(f"download of {url} stopped by SIGTERM; nothing saved") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _make_dirs(directory, created):
    """mkdir -p that appends each directory it makes to `created` (outermost first), and says so plainly
    when a path component exists but is not a directory."""
    missing = []
    for path in (directory, *directory.parents):
        if path.is_dir():
            break
        if os.path.lexists(path):
            raise UserError(f"cannot download into {directory}: {path} is a file, not a directory")
        missing.append(path)
    for path in reversed(missing):
        path.mkdir()
        created.append(path)


def _remove_dirs(created):
    for path in reversed(created):
        with contextlib.suppress(OSError):  # not empty: something else put a file there meanwhile
            path.rmdir()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(dest, deadline):
    """Remove temporary files of earlier downloads of `dest` that no live download can still be writing:
    from this host by a pid that is gone, or untouched for longer than `deadline` seconds. Returns them."""
    dest = Path(dest)
    pattern = re.compile(re.escape(f".{temp_stem(dest)}.") + r"(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\."
                         r"[0-9a-f]{12}\.part" + re.escape(dest.suffix))
    removed = []
    for path in dest.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        with contextlib.suppress(FileNotFoundError):  # another download removed it first
            dead = match["host"] == HOST_TAG and not _alive(int(match["pid"]))
            if dead or time.time() - path.stat().st_mtime > deadline:
                path.unlink()
                removed.append(path)
    return removed


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
