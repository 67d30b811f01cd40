"""Nothing lost, nothing silent: the faults of a hostile afternoon (issue 14), each reproduced first.

Synthetic VGG19 weights, 40 × 48 images, the preview recipe (blocks 1-3) at 32 px: each run is seconds."""
import errno
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from support import ROOT, cli_command, part_files, run_main, write_pair

from legacy_nst import Evaluation, Job, Output
from legacy_nst import images as images_module
from legacy_nst import run


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("pair"))


def argv(pair, weights, out, *extra):
    return ["--recipe", "preview", "--size", 32, "--iterations", 4, "--content", pair[0], "--style", pair[1],
            "--weights", weights, "--output", out, "--quiet", *extra]


def refused(code, err, *mentions):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("legacy-nst: error:"), err
    for text in mentions:
        assert text in err, err


# Adam checkpoints after every step (L-BFGS only between restarts); shallow layers keep the graph small
ADAM = ["--recipe", "tf-eager-blog", "--content-layers", "block2_conv2", "--style-layers", "block1_conv1"]


def listing(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ------------------------------------------------------------- 1. other runs' files are never replaced
def test_resuming_into_another_runs_output_is_refused(pair, vgg19_h5, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        code, _, err = run_main(argv(pair, vgg19_h5, folder / "out.png", "--save-every", 2), capsys)
        assert code == 0, err
    (b / "out.png").unlink()  # b's result is gone, its checkpoint and log remain
    before = listing(b)
    code, _, err = run_main(argv(pair, vgg19_h5, b / "out.png", "--resume", a / "out.checkpoint.npz"), capsys)
    refused(code, err, "exists", "--overwrite")
    assert listing(b) == before  # b can still be resumed


def test_a_second_run_with_the_same_output_is_refused_while_the_first_lives(pair, vgg19_h5, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".out.png.lock").write_text(str(holder.pid))
        code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "out.png"), capsys)
        refused(code, err, f"another run (process {holder.pid})")
        assert not (tmp_path / "out.png").exists()
    finally:
        holder.kill()
        holder.wait()
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "out.png"), capsys)  # its process is gone: stale
    assert code == 0, err
    assert not (tmp_path / ".out.png.lock").exists()


def test_a_file_that_appears_during_the_run_is_not_replaced(pair, vgg19_h5, tmp_path):
    result_path = tmp_path / "out.png"

    def intruder(event):
        if isinstance(event, Evaluation) and event.evaluations == 2:
            result_path.write_bytes(b"another program's file")

    job = Job(content=pair[0], styles=[pair[1]], recipe="preview", weights=str(vgg19_h5),
              overrides={"size": 32, "iterations": 4}, output=Output(str(result_path)))
    result = run(job, intruder)
    assert result.stopped == "write-failed"
    assert "out.png appeared while this run was working" in result.message
    assert result_path.read_bytes() == b"another program's file"
    assert (tmp_path / "out.partial.png").is_file()  # the finished image is kept under the partial name
    assert not part_files(tmp_path)


# ------------------------------------------------------------------ 2. a resume continues its own run
@pytest.fixture
def checkpoint(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "made.png", "--save-every", 2), capsys)
    assert code == 0, err
    return tmp_path / "made.checkpoint.npz"


def _rewrite(source, target, change):
    with np.load(source, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    change(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(target, **arrays)
    return target


@pytest.mark.parametrize("name, change, mentions", [
    ("missing image", lambda a, m: a.pop("state_image"), ["state 'image' is missing"]),
    ("missing meta field", lambda a, m: m.pop("history"), ["'history' is missing"]),
    ("nan best image", lambda a, m: a.__setitem__("tracker_best_image", a["tracker_best_image"] * np.nan),
     ["the kept best image holds NaN", "diverged"]),
    ("nan state", lambda a, m: a.__setitem__("state_image", a["state_image"] * np.inf), ["optimiser state 'image' holds NaN"]),
    ("flat image", lambda a, m: a.__setitem__("state_image", a["state_image"].ravel()), ["not (H, W, 3)"]),
    ("other version", lambda a, m: m.__setitem__("format", "something else"), ["not written by this version"]),
    ("other algorithm", lambda a, m: m["fingerprint"]["algorithm"].__setitem__("content_weight", 7.0),
     ["different run", "content_weight"]),
])
def test_a_damaged_or_foreign_checkpoint_is_refused_before_any_work(name, change, mentions, checkpoint, pair,
                                                                    vgg19_h5, tmp_path, capsys):
    bad = _rewrite(checkpoint, tmp_path / "bad.checkpoint.npz", change)
    started = time.perf_counter()
    code, _, err = run_main(argv(pair, "/nonexistent/weights.h5", tmp_path / "again.png", "--resume", bad), capsys)
    refused(code, err, "--resume", *mentions)  # refused before the (missing) weights are even looked at
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "again.png").exists()


def test_a_checkpoint_of_another_shape_is_refused(checkpoint, pair, vgg19_h5, tmp_path, capsys):
    other = write_pair(tmp_path / "big", shape=(64, 80))
    code, _, err = run_main(argv(other, vgg19_h5, tmp_path / "again.png", "--resume", checkpoint), capsys)
    refused(code, err, "different run", "the content image")


def test_random_bytes_or_pickles_never_suggest_loading_unsafely(pair, vgg19_h5, tmp_path, capsys):
    noise = tmp_path / "noise.checkpoint.npz"
    noise.write_bytes(os.urandom(4096))
    pickled = tmp_path / "pickled.checkpoint.npz"
    np.savez(pickled, meta=np.array([{"evil": 1}], dtype=object))
    for path in (noise, pickled):
        code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "x.png", "--resume", path), capsys)
        refused(code, err, "not a readable legacy-nst checkpoint")
        assert "allow_pickle" not in err and "unsafe" not in err.lower()


# ------------------------------------------------------------------------ 3. failures while writing
def _disk_full_for(monkeypatch, should_fail):
    real = images_module.write_image_file

    def write(image, path, fmt, alpha=None):
        if should_fail():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(image, path, fmt, alpha)

    monkeypatch.setattr(images_module, "write_image_file", write)


def test_disk_full_at_the_result_keeps_the_image_as_partial(pair, vgg19_h5, tmp_path, capsys, monkeypatch):
    calls = []
    _disk_full_for(monkeypatch, lambda: calls.append(1) or len(calls) == 1)  # the result fails, the retry not
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "out.png"), capsys)
    assert code == 1 and "internal error" not in err
    assert f"could not write {tmp_path / 'out.png'}: No space left on device" in err
    assert (tmp_path / "out.partial.png").is_file() and not (tmp_path / "out.png").exists()
    assert not part_files(tmp_path)


def test_interrupt_on_a_full_disk_still_exits_130_and_says_where_the_checkpoint_is(pair, vgg19_h5, tmp_path,
                                                                                  capsys, monkeypatch):
    from legacy_nst.ui import console as progress

    full = []
    _disk_full_for(monkeypatch, lambda: bool(full))
    real_call = progress.Console.__call__

    def console(self, event):
        real_call(self, event)
        if isinstance(event, Evaluation) and event.evaluations == 4:
            full.append(1)  # the disk fills up after the checkpoint at evaluation 2 ...
            raise KeyboardInterrupt  # ... and the user presses Ctrl-C

    monkeypatch.setattr(progress.Console, "__call__", console)
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "out.png", *ADAM, "--save-every", 2, "--iterations",
                                 8), capsys)
    assert code == 130, err
    assert "No space left on device" in err and "could not be kept" in err
    assert f"--resume {tmp_path / 'out.checkpoint.npz'}" in err
    assert not part_files(tmp_path)


# --------------------------------------------------------------------------- 4. names, 5. sizes, 7.
def test_a_long_legal_name_works_and_a_too_long_one_is_refused_up_front(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / ("n" * 236 + ".png")), capsys)
    assert code == 0, err  # its temporary names are short
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / ("m" * 248 + ".png")), capsys)
    refused(code, err, "too long")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("m")]


def test_a_huge_budget_with_frequent_saves_is_not_enumerated(pair, tmp_path, capsys):
    started = time.perf_counter()
    code, _, err = run_main(argv(pair, "/nonexistent/weights.h5", tmp_path / "o.png", "--iterations",
                                 1_000_000_000, "--save-every", 1), capsys)
    refused(code, err, "--weights")  # it got as far as the weights at once
    assert time.perf_counter() - started < 10


def test_a_huge_grid_is_refused(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "o.png", "--grid", "100000,100000"), capsys)
    refused(code, err, "grid", "at most 100 images")


def test_a_pipe_as_an_image_is_named_as_such(pair, vgg19_h5, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = run_main(argv((fifo, pair[1]), vgg19_h5, tmp_path / "o.png"), capsys)
    refused(code, err, "is a pipe or device, not a file")


def test_an_icon_output_that_would_shrink_the_result_is_refused(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "o.ico"), capsys)
    refused(code, err, "o.ico", "cannot hold the result")


def test_a_non_ascii_name_with_an_ascii_terminal_finishes_cleanly(pair, vgg19_h5, tmp_path):
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    proc = subprocess.run(cli_command(*argv(pair, vgg19_h5, tmp_path / "Tübingen_ß.png")), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "Tübingen_ß.png").is_file() and "\\xfc" in proc.stdout


def test_resuming_adam_prints_no_tensorflow_warning(pair, vgg19_h5, tmp_path, capsys):
    base = argv(pair, vgg19_h5, tmp_path / "a.png", *ADAM, "--save-every", 2)
    code, _, err = run_main(base, capsys)
    assert code == 0, err
    proc = subprocess.run(cli_command(*base, "--iterations", 6, "--resume", tmp_path / "a.checkpoint.npz",
                                      "--overwrite"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "deprecat" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(), proc.stderr


# ------------------------------------------------------------------------------- 5. memory, up front
def test_a_size_that_cannot_fit_is_refused_with_the_largest_that_fits(pair, vgg19_h5, tmp_path, capsys):
    for size in (20000, 100_000_000):
        started = time.perf_counter()
        code, _, err = run_main(argv(pair, vgg19_h5, tmp_path / "o.png", "--size", size), capsys)
        refused(code, err, "GiB of memory", "the largest long side that fits is about")
        assert time.perf_counter() - started < 20  # before any image is resized or graph built
    assert not list(tmp_path.iterdir())


def test_an_address_space_limit_is_respected_up_front(pair, vgg19_h5, tmp_path):
    import resource

    def limit():  # ulimit -v 3000000 (KiB), as the afternoon's probe: a 1024 px run died of SIGSEGV
        resource.setrlimit(resource.RLIMIT_AS, (3_000_000 * 1024, resource.RLIM_INFINITY))

    proc = subprocess.run(cli_command(*argv(pair, vgg19_h5, tmp_path / "o.png", "--size", 1024)), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    assert "GiB of memory" in proc.stderr and "use --size" in proc.stderr and proc.stderr.count("\n") == 1
