"""The command line end to end: `python run_transfer.py ...` in a subprocess, as a user runs it.

Every subprocess imports TensorFlow (seconds of CPU each), so all of them are launched when the module
starts (an autouse fixture) and go through a small pool of worker threads; each test then waits for its
own run. The bad-input cases, --list-recipes and --show-recipe run in-process through legacy_nst.ui.cli.main
(the function run_transfer.py calls, exit code and stderr included) while the pool works; two bad-input
cases also run as subprocesses.
Synthetic weights (tests/conftest.py) and tiny images, except the one real-weights run of the preview
recipe.
"""
import csv
import dataclasses
import hashlib
import math
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import CliRun, CliRuns, run_main, write_pair

from legacy_nst import images, recipes
from legacy_nst.ui import cli
from legacy_nst.vgg import weights

ROOT = Path(__file__).resolve().parents[2]
SHARED_IMAGES = ROOT.parent / "shared" / "images"

HELP_FLAGS = ("--content --style --output --recipe --weights --network --size --iterations --content-layers "
              "--style-layers --content-weight --style-weight --tv-weight --pooling --init --seed --save-every "
              "--device --list-recipes --show-recipe --set --resume --overwrite").split()
RECIPE_NAMES = ("preview", "tf-eager-blog", "hvass-vgg16", "keras-lbfgs", "keras-gd-noise", "gatys2016")
LOG_FIELDS = {"iteration", "evaluations", "total", "content_raw", "content_weighted", "style_raw",
              "style_weighted"}


def _closed_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(directory):
    """{relative path: md5} of every file under `directory`."""
    return {str(p.relative_to(directory)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def _base_env(run_dir):
    env = dict(os.environ)
    for name in (weights.ENV_DIR, weights.ENV_URL, "LEGACY_NST_REAL_WEIGHTS"):
        env.pop(name, None)
    # never the internet: if a run wanted to download, it would hit a closed loopback port
    env[weights.ENV_URL] = f"http://127.0.0.1:{_closed_port()}"
    home = run_dir.parent / f"{run_dir.name}.home"  # Keras and matplotlib write their caches there
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    return env


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# name -> (extra arguments / replacement of the defaults, stderr pattern). {d} is the run's directory,
# {c} / {s} its content and style images, {w19} / {w16} the synthetic VGG19 / VGG16 files.
ERROR_CASES = {
    "unknown recipe": (["--recipe", "prevew"], r"unknown recipe 'prevew'; did you mean preview\?"),
    "unknown layer": (["--content-layers", "block9_conv9"], r"unknown vgg19 layer 'block9_conv9'"),
    "size 0": (["--size", "0"], r"--size: 0 must be at least 1"),
    "iterations -1": (["--iterations", "-1"], r"--iterations: -1 must be at least 1"),
    "content weight nan": (["--content-weight", "nan"], r"--content-weight: nan is not a finite number"),
    "missing content": (["--content", "{d}/nope.png"], r"nope\.png: no such file"),
    "output dir missing": (["--output", "{d}/missing/out.png"], r"missing does not exist"),
    "output extension": (["--output", "{d}/out.xyz"], r"unknown image extension '\.xyz'"),
    "output is content": (["--output", "{c}"], r"is also an input"),
    "output exists": ([], r"out\.png exists; pass --overwrite"),
    "blend count": (["--style", "{s}", "{s2}", "--style-blend-weights", "1"],
                    r"--style-blend-weights has 1 values for 2 style images"),
    "device gpu": (["--device", "gpu"], r"--device gpu: TensorFlow sees no GPU"),
    "vgg16 weights for vgg19": (["--network", "vgg19", "--weights", "{w16}"],
                                r"holds VGG16 weights but the run uses VGG19"),
    "no weights anywhere": (["--weights", None], r"could not download http://127\.0\.0\.1:\d+/vgg19/"
                            r"vgg19_weights_tf_dim_ordering_tf_kernels_notop\.h5 \(.*\); put "
                            r"vgg19_weights_tf_dim_ordering_tf_kernels_notop\.h5 \(md5 253f8cb5.*\) in "
                            r".*env_weights or in \$LEGACY_NST_WEIGHTS_DIR, or pass --weights PATH"),
}


def _merge(defaults, extra):
    """Defaults as {flag: [values]}, replaced flag by flag by `extra` (a None value drops the flag)."""
    merged, flag = dict(defaults), None
    for item in extra:
        if isinstance(item, str) and item.startswith("--") and not item.lstrip("-").isdigit():
            flag = item
            merged[flag] = []
        elif item is None:
            merged.pop(flag)
        else:
            merged[flag].append(item)
    return [part for flag, values in merged.items() for part in (flag, *values)]


def _prepare_error_case(name, d, vgg19_h5, vgg16_h5):
    """Files for one bad-input case in `d`; returns (CLI arguments, environment settings)."""
    extra, _ = ERROR_CASES[name]
    d.mkdir()
    content, style = write_pair(d)
    style2 = d / "style2.png"
    style2.write_bytes(style.read_bytes())
    fill = dict(d=d, c=content, s=style, s2=style2, w19=vgg19_h5, w16=vgg16_h5)
    defaults = {"--recipe": ["preview"], "--weights": [vgg19_h5], "--size": [32], "--iterations": [2],
                "--content": [content], "--style": [style], "--output": [d / "out.png"], "--quiet": []}
    argv = _merge(defaults, [a.format(**fill) if isinstance(a, str) else a for a in extra])
    env = {weights.ENV_URL: f"http://127.0.0.1:{_closed_port()}"}
    if name == "output exists":
        (d / "out.png").write_bytes(b"an earlier result the user wants to keep")
    if name == "no weights anywhere":
        env[weights.ENV_DIR] = str(d / "env_weights")
    return [str(a) for a in argv], env


# Also run as real subprocesses: a flag refused by argparse, and a weight file refused once the work began.
SUBPROCESS_ERRORS = ("size 0", "vgg16 weights for vgg19")


def _submit_errors(runs, base, vgg19_h5, vgg16_h5):
    for name in SUBPROCESS_ERRORS:
        d = base / name.replace(" ", "_")
        argv, env_settings = _prepare_error_case(name, d, vgg19_h5, vgg16_h5)
        env = dict(_base_env(d), **env_settings)
        runs.submit(f"error: {name}", CliRun(argv, d, env, before=_snapshot(d)))


OK_CASES = ("keras-lbfgs", "preview images", "vgg16", "demo pair")  # submitted in this order


def _submit_ok(runs, base, vgg19_h5, vgg16_h5):
    for name in OK_CASES:
        d = base / name.replace(" ", "_")
        d.mkdir()
        content, style = write_pair(d)
        out = d / "result.png"
        common = ["--size", 32, "--output", out]
        if name == "preview images":
            args = ["--recipe", "preview", "--weights", vgg19_h5, "--iterations", 5, "--content", content,
                    "--style", style, "--quiet", *common]
        elif name == "demo pair":  # no --content / --style; the progress bar stays on
            args = ["--recipe", "preview", "--weights", vgg19_h5, "--iterations", 5, *common]
        elif name == "vgg16":
            args = ["--recipe", "preview", "--network", "vgg16", "--weights", vgg16_h5, "--iterations", 5,
                    "--content", content, "--style", style, "--quiet", *common]
        else:
            args = ["--recipe", "keras-lbfgs", "--weights", vgg19_h5, "--iterations", 6, "--set", "lbfgs_maxfun=3",
                    "--content", content, "--style", style, "--quiet", *common]
        runs.submit(name, CliRun(args, d, _base_env(d), output=out))
    d = base / "help"
    d.mkdir()
    runs.submit("help", CliRun(["--help"], d, _base_env(d), before=_snapshot(d)))


@pytest.fixture(scope="module", autouse=True)
def runs(request, tmp_path_factory, vgg19_h5, vgg16_h5):
    """Every subprocess of the module, started at once (the in-process tests run meanwhile)."""
    runs = CliRuns(workers=3, timeout=400)
    real = Path(request.config.getoption("--real-weights"))
    if real.is_file():  # test_real_weights_preview fails on its own (real_weights fixture) when missing
        d = tmp_path_factory.mktemp("cli_real")
        out = d / "tubingen_starry.png"
        runs.submit("real", CliRun(["--recipe", "preview", "--weights", real,
                                     "--content", SHARED_IMAGES / "tubingen.jpg",
                                     "--style", SHARED_IMAGES / "starry_night.jpg",
                                     "--size", 96, "--iterations", 30, "--output", out, "--quiet"],
                                d, _base_env(d), output=out))
    _submit_ok(runs, tmp_path_factory.mktemp("cli_ok"), vgg19_h5, vgg16_h5)
    _submit_errors(runs, tmp_path_factory.mktemp("cli_errors"), vgg19_h5, vgg16_h5)
    yield runs
    runs.close()


def _read_log(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert LOG_FIELDS <= set(reader.fieldnames), reader.fieldnames
    assert rows, "empty loss log"
    return rows


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------------------
# bad input: exit 2, one line, nothing written


def _check_refusal(code, stderr, name, directory, before):
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr[-3000:]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("legacy-nst: error: "), lines[0]
    _, pattern = ERROR_CASES[name]
    assert re.search(pattern, lines[0]), lines[0]
    # nothing new, nothing changed (the existing output and the content given as output are intact)
    assert _snapshot(directory) == before


@pytest.mark.parametrize("name", ERROR_CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, tmp_path, monkeypatch, capsys,
                                                            vgg19_h5, vgg16_h5):
    if name == "device gpu" and _has_gpu():
        pytest.skip("this machine has a GPU")
    d = tmp_path / "run"
    argv, env = _prepare_error_case(name, d, vgg19_h5, vgg16_h5)
    monkeypatch.delenv(weights.ENV_DIR, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # the project's weights/ and ~/.keras/models may hold real files on a developer's machine
    monkeypatch.setattr(weights, "PROJECT_DIR", tmp_path / "project_weights")
    monkeypatch.setattr(weights, "KERAS_CACHE", tmp_path / "keras_cache")
    monkeypatch.chdir(d)
    before = _snapshot(d)
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    out, err = capsys.readouterr()
    _check_refusal(code, err, name, d, before)
    assert not (tmp_path / "project_weights").exists() or not any((tmp_path / "project_weights").iterdir())


# ---------------------------------------------------------------------------------------------------------
# runs that succeed


@pytest.mark.parametrize("name", OK_CASES)
def test_tiny_run_writes_image_and_loss_log(name, runs):
    proc, job = runs.get(name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _no_traceback(proc)
    assert f"saved {job.output}" in proc.stdout
    with Image.open(job.output) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        width, height = img.size
    if name == "keras-lbfgs":  # the Keras example's sizing: rows = --size, cols scaled with int()
        assert (width, height) == (int(48 * 32 / 40), 32)
    elif name == "demo pair":  # the demo content is 4:3
        assert (width, height) == (32, 24)
    else:
        assert (width, height) == (32, round(40 * 32 / 48))
    assert job.output.stat().st_mode & 0o777 == 0o666 & ~_umask()
    rows = _read_log(job.output.with_name(f"{job.output.stem}_losses.csv"))
    totals = [float(r["total"]) for r in rows]
    assert all(math.isfinite(t) for t in totals)
    assert min(totals) < totals[0]  # the optimiser made progress
    if name == "keras-lbfgs":
        assert {int(r["iteration"]) for r in rows} == {0, 1}  # --iterations 6 = 2 L-BFGS restarts of 3
        # --set lbfgs_maxfun=3 took effect: scipy's default 15 would make at least 2 × 16 evaluations
        assert max(int(r["evaluations"]) for r in rows) < 2 * 16
    else:
        assert max(int(r["evaluations"]) for r in rows) <= 2 * 5  # not the recipe's 120
    leftovers = [p.name for p in job.cwd.iterdir() if ".part" in p.name]
    assert not leftovers, leftovers


# ---------------------------------------------------------------------------------------------------------
# information


def test_help_documents_every_flag(runs):
    proc, job = runs.get("help")
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    missing = [flag for flag in HELP_FLAGS if flag not in proc.stdout]
    assert not missing, f"--help does not mention {missing}"
    assert _snapshot(job.cwd) == job.before  # --help writes nothing


def test_list_recipes(capsys):
    code, out, err = run_main(["--list-recipes"], capsys)
    assert code == 0 and not err.strip(), err
    listed = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert set(RECIPE_NAMES) <= set(listed), out


def test_show_recipe_prints_every_field(capsys):
    code, out, err = run_main(["--show-recipe", "keras-lbfgs"], capsys)
    assert code == 0 and not err.strip(), err
    recipe = recipes.RECIPES["keras-lbfgs"]
    shown = {}
    for line in (line.strip() for line in out.splitlines()):
        if line and not line.startswith("["):
            name = line.split()[0]
            shown[name] = line[len(name):].split("   (--corrected: ")[0].strip()
    sections = [line[1:-1] for line in out.splitlines() if line.startswith("[")]
    assert sections == list(recipes.SECTIONS)  # the recipe in sections, each field in exactly one
    assert sorted(f for names in recipes.SECTIONS.values() for f in names) == sorted(
        f.name for f in dataclasses.fields(recipe))
    for field in dataclasses.fields(recipe):
        assert field.name in shown, f"--show-recipe does not print {field.name}"
        assert shown[field.name] == str(getattr(recipe, field.name)).strip(), field.name
    assert "(--corrected: round)" in next(line for line in out.splitlines() if line.lstrip().startswith("save_cast"))
    assert "seed 003" in shown["source"] and "style_weight_twice" in shown["quirks"]


def test_show_unknown_recipe_suggests(capsys):
    code, out, err = run_main(["--show-recipe", "keras-lbgfs"], capsys)
    assert code == 2 and not out
    assert err.strip() == ("legacy-nst: error: unknown recipe 'keras-lbgfs'; did you mean keras-lbfgs? "
                           "(see --list-recipes)")


@pytest.mark.parametrize("name", SUBPROCESS_ERRORS)
def test_bad_input_in_a_subprocess(name, runs):
    proc, job = runs.get(f"error: {name}")
    assert "Traceback" not in proc.stdout
    _check_refusal(proc.returncode, proc.stderr, name, job.cwd, job.before)


# ---------------------------------------------------------------------------------------------------------
# the real thing


def test_real_weights_preview_stylises(real_weights, runs):
    """Genuine VGG19 blocks 1-3, tubingen + starry night at 96 px, 30 L-BFGS evaluations.

    Measured on this code: the style term falls about 95x (3.8e9 -> 4.0e7) and the image moves by a mean
    of about 27 levels per channel from the content. The bounds leave room for other CPUs and BLAS."""
    proc, job = runs.get("real")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _no_traceback(proc)
    rows = _read_log(job.output.with_name(f"{job.output.stem}_losses.csv"))
    style = [float(r["style_raw"]) for r in rows]
    total = [float(r["total"]) for r in rows]
    assert len(rows) >= 25  # about 30 evaluations were logged
    assert style[0] / style[-1] >= 20, style
    assert total[0] / total[-1] >= 20, total
    assert float(rows[0]["content_raw"]) == 0.0  # the run starts from the content image
    result = np.asarray(Image.open(job.output).convert("RGB"), np.float32)
    assert result.shape == (72, 96, 3)  # tubingen is 4:3, long side 96
    content = images.resize(images.load_image(SHARED_IMAGES / "tubingen.jpg"), result.shape[:2], "lanczos")
    difference = float(np.abs(result - content).mean())
    assert difference > 12, difference
