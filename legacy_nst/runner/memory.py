"""How much memory a run needs, how much the machine can give, and the largest image that fits.

The estimate is an upper bound on a run's peak resident memory: a model fitted to the real engine
(bench/memory.py),
    model = BASE + RUN_OVERHEAD + WEIGHT_COPIES · weights + ACTIVATION_COPIES · activations + targets
            + optimiser state,
times MARGIN. Runs are accepted, tiled or refused on it, so it must not be exceeded on any CPU kind.
`weights` are the float32 kernels and biases up to the deepest layer, `activations` the float32 outputs of
every convolution up to it (the backward pass keeps them, ReLU outputs and gradients beside them),
`targets` the content feature maps the objective holds. The optimiser's state is counted, not fitted. Tiled
(legacy_nst.engine.tiling), the activations are those of one tile with its halos, and a few image-sized arrays
(image, gradient, total variation) come on top.
"""
import resource
import sys
from pathlib import Path

from .. import engine
from ..errors import UserError
from ..vgg.architecture import conv_layers, conv_shapes, deepest_layer, halo, pools_before

GIB = 1024**3
# Fitted by bench/memory.py: least squares of peak − targets over Transfer + its Evaluator (no scipy state)
# for tf-eager-blog (VGG19 to block5_conv2, 61 MB of weights) and the preview (to block3_conv2, 4.6 MB) at
# 96×128, 192×256, 384×512 and 768×1024 px: measured 0.910, 0.977, 1.280, 2.518 and 0.709, 0.786, 1.045,
# 2.226 GiB, all eight within ±6 % of the fit (an earlier run measured 2.744 and 2.268 GiB at 768×1024:
# runs differ by up to 8 %). BASE is the process with TensorFlow, the graph and the session; the weights are
# held as numpy arrays and as the kernel, flipped-kernel and bias variables; the activations as outputs,
# ReLU outputs and gradients.
BASE = 774_409_015
WEIGHT_COPIES = 2.06
ACTIVATION_COPIES = 2.05
# float64 image-sized vectors an optimiser holds at its peak, measured by bench/memory.py on the real LBFGS
# and ScaledStepDescent classes (40 evaluations on an ill-conditioned quadratic, so that L-BFGS fills all
# m = 10 correction pairs, 1024 × 1024 px): scipy's 2·m history and 5 work vectors, x, g, bounds, the
# Evaluator's copies. Adam's state lives in the graph and is counted: image, m and v float32 variables and
# the image fetched at each step (2 float64 vectors' worth).
OPTIMISER_VECTORS = {None: 0.0, "lbfgs": 40.6, "lbfgs+bounds": 45.7, "adam": 2.0, "descent": 5.0,
                     # torch_lbfgs.py, counted not measured: 2 · 100 float32 pairs (the sources' m) + 6 vectors
                     "torch-lbfgs": 106.0}
# float32 image-sized arrays a tiled evaluation holds beside one tile (content, style, image, gradient, the
# stitched targets' staging): least squares through 0 of what the fit above leaves over for TiledObjective
# on the preview at 768×1024 and 1536×2048 px, 512 px tiles (measured 1.174 and 1.719 GiB; bench/memory.py).
TILED_IMAGE_ARRAYS = 7.21
# What a whole run holds beyond the engine the constants above were fitted on (the run loop, its images,
# history and loss plot: Pillow and matplotlib): whole runs through legacy_nst.run at 256 px measured 0.066
# GiB (preview) and 0.091 GiB (tf-eager-blog on the whole VGG19) above that model on an AVX2 EPYC
# (bench/memory.py --parts verify).
RUN_OVERHEAD = 96 * 2**20
# The bound's headroom over the model, for what differs between CPU kinds and between runs: the fit is within
# ±6 % of its calibration runs on an AVX-512 Xeon, two runs of one size there differed by up to 8 %, and on an
# AVX2 EPYC whole runs measured 0.82-0.91 of the bound, on an AVX-512 EPYC 0.84-0.92 (10 runs each: L-BFGS,
# Adam, descent, tiles, 256-2048 px; bench/memory.py --parts verify, bench/README.md).
MARGIN = 1.10
# Address space is not resident memory: `ulimit -v` (RLIMIT_AS) limits what a process maps, and TensorFlow maps
# far more than it touches, more with each CPU thread. Measured on the 2-core AVX2 EPYC (bench/memory.py --parts
# verify: VmPeak − VmSize when the run loop judges): at 2 threads, 7 runs (preview and tf-eager-blog, L-BFGS,
# Adam and descent, 192×256 to 1536×2048 px) mapped at most 1.75 bytes per byte of their estimate − 0.8 GiB
# (measured 0.79-0.93 of that; the share grows with the image: 0.84 of the estimate at 256 px, 1.53 at 2048);
# at 1 thread the 1024 px L-BFGS run mapped 0.66 of its 2-thread mapping. Per byte of estimate, a run maps
# ADDRESS_SHARED + ADDRESS_PER_THREAD · threads (1.75 at 2 threads, 1.15 at 1), plus ADDRESS_OFFSET: more
# threads than 2 are extrapolated on that line (not measured: this machine has 2 cores). Importing TensorFlow
# maps TF_IMPORT_MAPPED (VmSize 16 MiB -> 1.79 GiB).
ADDRESS_SHARED, ADDRESS_PER_THREAD = 0.55, 0.60
ADDRESS_OFFSET = -0.8 * GIB
TF_IMPORT_MAPPED = 1.8 * GIB

def _status_bytes(field):
    """A size field of /proc/self/status in bytes (None where the kernel does not give it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def peak_rss_bytes():
    """This process's peak resident memory (VmHWM; ru_maxrss would carry a parent's peak over execve)."""
    peak = _status_bytes("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if peak is None else peak


def mapped_bytes():
    """The address space this process maps now (VmSize: what `ulimit -v` limits)."""
    return _status_bytes("VmSize")


def peak_mapped_bytes():
    """The most address space this process has mapped (VmPeak)."""
    return _status_bytes("VmPeak")


def weight_bytes(network, deepest):
    shapes = conv_shapes(network)
    names = conv_layers(network)
    count = 0
    for name in names[: names.index(deepest) + 1]:
        (kh, kw, cin, cout), (bias,) = shapes[name]
        count += kh * kw * cin * cout + bias
    return 4 * count


def feature_bytes(network, layer, height, width):
    """One float32 feature map of `layer` for an image of height × width."""
    level = pools_before(layer)
    return 4 * (height >> level) * (width >> level) * conv_shapes(network)[layer][1][0]


def activation_bytes(network, deepest, height, width):
    names = conv_layers(network)
    return sum(feature_bytes(network, name, height, width) for name in names[: names.index(deepest) + 1])


def estimate_bytes(network, layers, height, width, optimizer, tiled_tile=None, content_layers=None,
                   bounds=False):
    """At most the peak resident bytes of a run on a height × width image whose losses read `layers`.

    optimizer: lbfgs | adam | descent | None (the objective alone); bounds: L-BFGS-B with pixel
    bounds; content_layers: the layers whose full feature maps are held as targets (default: the deepest);
    tiled_tile: the tile size of a TiledObjective, None for the untiled Objective."""
    deepest = deepest_layer(network, layers)
    content_layers = (deepest,) if content_layers is None else content_layers
    pixels = height * width
    kind = "lbfgs+bounds" if optimizer == "lbfgs" and bounds else optimizer
    total = (BASE + RUN_OVERHEAD + WEIGHT_COPIES * weight_bytes(network, deepest)
             + sum(feature_bytes(network, layer, height, width) for layer in content_layers)
             + OPTIMISER_VECTORS[kind] * 8 * 3 * pixels)
    if tiled_tile is None:
        return int(MARGIN * (total + ACTIVATION_COPIES * activation_bytes(network, deepest, height, width)))
    return int(MARGIN * (total + ACTIVATION_COPIES * activation_bytes(network, deepest, *tile_input(
        network, deepest, tiled_tile, height, width)) + TILED_IMAGE_ARRAYS * 4 * 3 * pixels))


def tile_input(network, deepest, tile, height, width):
    """The most a tile with its halos can be, (height, width): tile + 2 halos, or the image if smaller.

    An upper bound (TiledObjective balances the tiles, which are often smaller) that grows with the image,
    so that largest_side_that_fits can bisect."""
    halo_px, align = halo(network, deepest)
    tile = max(tile // align * align, align)
    return tuple(min(tile + 2 * halo_px, side) for side in (height, width))


def _meminfo_available():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _read_int(path):
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _inactive_file(directory, key):
    """Page cache the kernel reclaims before it fails an allocation: it counts as used but is available."""
    try:
        for line in (directory / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_headroom():
    """Bytes left below the tightest memory limit of this process's cgroup and its ancestors (v1 or v2)."""
    headrooms = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            root, files = Path("/sys/fs/cgroup"), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory")
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        directory = root / path.lstrip("/")
        for current in [directory, *directory.parents]:
            limit, usage = _read_int(current / files[0]), _read_int(current / files[1])
            if limit is not None and usage is not None:
                headrooms.append(limit - usage + _inactive_file(current, files[2]))
            if current == root:
                break
    return min(headrooms) if headrooms else None


def _address_space_headroom():
    """The largest estimate `ulimit -v` (RLIMIT_AS) leaves room for: the address space still free (less
    TensorFlow's import while it is to come), through the measured mapping per estimated byte."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    imported = "tensorflow" in sys.modules
    free = soft - (mapped_bytes() or 0) - (0 if imported else TF_IMPORT_MAPPED)
    threads = engine.threads_in_effect() if imported else engine.default_threads()
    return int((free - ADDRESS_OFFSET) / (ADDRESS_SHARED + ADDRESS_PER_THREAD * threads))


def available_bytes():
    """Bytes this process can still use: the machine's MemAvailable, or less where a cgroup memory limit
    or RLIMIT_AS leaves less."""
    candidates = [value for value in (_meminfo_available(), _cgroup_headroom(), _address_space_headroom())
                  if value is not None]
    return max(0, min(candidates)) if candidates else 0


def fits(need, available):
    """Whether an estimated `need` (estimate_bytes, already an upper bound) fits in `available` bytes."""
    return need <= available


def largest_side_that_fits(network, layers, shape, optimizer, available=None, tiled_tile=None,
                           content_layers=None, bounds=False):
    """The largest long side (px) at which an image of `shape`'s aspect ratio fits in `available` bytes
    (default: available_bytes()), by bisection on estimate_bytes; 0 when not even 1 px fits."""
    available = available_bytes() if available is None else available
    height, width = shape[:2]

    def fits_at(side):
        scale = side / max(height, width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        return fits(estimate_bytes(network, layers, h, w, optimizer, tiled_tile, content_layers, bounds), available)

    low, high = 0, 1
    while fits_at(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits_at(middle) else (low, middle)
    return low


def choose_tile(network, layers, height, width, optimizer, content_layers=None, bounds=False, available=None,
                tiles=(1024, 512, 256), untiled=True):
    """None when the untiled run fits (and `untiled` allows it), else the largest of `tiles` that fits; a
    UserError naming the largest long side that fits when none does."""
    available = available_bytes() if available is None else available
    for tile in ((None,) if untiled else ()) + tuple(tiles):
        if fits(estimate_bytes(network, layers, height, width, optimizer, tile, content_layers, bounds), available):
            return tile
    need = estimate_bytes(network, layers, height, width, optimizer, tiles[-1], content_layers, bounds)
    side = largest_side_that_fits(network, layers, (height, width), optimizer, available, tiles[-1],
                                  content_layers, bounds)
    raise UserError(f"--size: a {width}×{height} px run needs about {need / GIB:.1f} GiB of memory even in "
                    f"{tiles[-1]} px tiles and {available / GIB:.1f} GiB is available; the largest long side that "
                    f"fits is about {side} px: use --size {side} or less")
