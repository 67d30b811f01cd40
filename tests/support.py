"""The one set of helpers the test modules share (and the benchmarks, which put tests/ on sys.path): running
the CLI (in this process or as a real process), small test images, synthetic VGG weights and weight files,
and reading what a run wrote."""
import concurrent.futures
import csv
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from legacy_nst.atomic import atomic_path
from legacy_nst.ui import cli
from legacy_nst.vgg.architecture import conv_shapes, layer_sequence

ROOT = Path(__file__).resolve().parents[1]
RUN_TRANSFER = ROOT / "run_transfer.py"
SHARED = ROOT.parent / "shared"



def small_job_defaults(weights):
    """The [defaults] of the batch tests' jobs files: 20-evaluation preview jobs at 32 px on `weights`, from
    noise, over write_pair's content.png and style.png."""
    return f"""
[defaults]
recipe = "preview"
weights = "{weights}"
content = "content.png"
style = "style.png"
size = 32
iterations = 20
lbfgs_maxfun = 5
init = "noise"
"""

def run_main(argv, capsys):
    """cli.main in-process: (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def cli_command(*args):
    """argv of `python run_transfer.py ARGS` (a real process, as a user runs it)."""
    return [sys.executable, str(RUN_TRANSFER), *map(str, args)]


def start_process(argv, folder, env=None):
    """`python run_transfer.py ARGV` with its output in files in `folder` (a full pipe can never block it)."""
    with open(folder / "stdout.txt", "w") as stdout, open(folder / "stderr.txt", "w") as stderr:
        return subprocess.Popen(cli_command(*argv), stdout=stdout, stderr=stderr, cwd=folder, env=env)


@dataclasses.dataclass
class CliRun:
    """One `python run_transfer.py` process of a test module: its arguments, where it runs, what it writes."""

    argv: list
    cwd: Path
    env: dict = None
    before: dict = None  # a snapshot of cwd before the run, for runs that must write nothing
    output: Path = None


class CliRuns:
    """A module's CLI processes, started together on a few worker threads (each pays TensorFlow's import, so
    they overlap with the in-process tests); `get(name)` waits for one: (CompletedProcess, CliRun)."""

    def __init__(self, workers=3, timeout=600):
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.runs, self.futures, self.timeout = {}, {}, timeout

    def submit(self, name, run):
        self.runs[name] = run
        self.futures[name] = self.pool.submit(subprocess.run, cli_command(*run.argv), cwd=run.cwd, env=run.env,
                                              capture_output=True, text=True, timeout=self.timeout)

    def get(self, name):
        return self.futures[name].result(), self.runs[name]

    def close(self):
        self.pool.shutdown(cancel_futures=True)


def write_pair(folder, shape=(40, 48)):
    """A smooth content photo and a stripy style image (PNG) in `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    content = np.stack([120 + 100 * np.sin(xx / 7), 90 + 80 * np.cos(yy / 5), 60 + xx * 3], axis=-1)
    content[h // 4: h // 2, w // 4: w // 2] = (230, 40, 40)
    style = np.stack([128 + 120 * np.sin((xx + yy) / 2), 128 + 120 * np.sin(xx / 3), 128 + 0 * xx], axis=-1)
    paths = []
    for name, array in (("content.png", content), ("style.png", style)):
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(folder / name)
        paths.append(folder / name)
    return tuple(paths)


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


def part_files(folder):
    """atomic_path's temporary files (`.XXXX.part`); STEM.partial.EXT is a real output."""
    return [p.name for p in Path(folder).rglob("*") if re.search(r"\.part(\.|$)", p.name)]


def pixels(path):
    return np.asarray(Image.open(path), np.int16)


def log_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
