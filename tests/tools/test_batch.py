"""Batches (issue 12): the jobs file, the local runner (in this process and in worker processes), a real Ray
cluster on 127.0.0.1, a worker killed mid-job, an interrupted batch that resumes, the summary.

One jobs file of small jobs on the genuine partial VGG19 at 32 px: a 2 × 2 sweep over style weight × seed
from noise, a longer "victim" job (the one killed or cut), a job whose loss overflows and one whose content
is not an image. L-BFGS restarts every 5 evaluations, so every job checkpoints every 5 evaluations. The
oracle is the same file run one job at a time in this process: every other mode must write the same image
bytes and the same loss values (wall-clock seconds aside)."""
import contextlib
import csv
import dataclasses
import errno
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from support import ROOT, cli_command, run_main, small_job_defaults, write_pair

import legacy_nst
from legacy_nst import Job, Output, Style, UserError, liveness
from legacy_nst.tools import batch, jobsfile

SMALL = ("sweep-style_weight=0.1-seed=1", "sweep-style_weight=0.1-seed=2", "sweep-style_weight=10.0-seed=1",
         "sweep-style_weight=10.0-seed=2")
DONE = ("victim",) + SMALL
FAILING = {"overflow": "the loss became inf", "unreadable": "not an image"}
VICTIM_EVALUATIONS = 150


def jobs_toml(weights):
    return small_job_defaults(weights) + f"""
[[job]]
name = "victim"
iterations = {VICTIM_EVALUATIONS}

[[job]]
name = "sweep"
sweep = {{style_weight = [0.1, 10.0], seed = [1, 2]}}

[[job]]
name = "overflow"
style_weight = 1e30

[[job]]
name = "unreadable"
content = "notes.txt"
"""


@pytest.fixture(scope="module")
def jobs_file(tmp_path_factory, real_weights):
    folder = tmp_path_factory.mktemp("jobs")
    write_pair(folder, shape=(24, 32))
    (folder / "notes.txt").write_text("not an image\n")
    path = folder / "jobs.toml"
    path.write_text(jobs_toml(real_weights))
    return path


@pytest.fixture(scope="module")
def reference(jobs_file, tmp_path_factory):
    """The oracle: every job one by one in this process."""
    out = tmp_path_factory.mktemp("reference")
    outcomes = batch.run_jobs(jobsfile.load_jobs(jobs_file), out)
    return out, {o.name: o for o in outcomes}


def summary(out):
    with open(out / "summary.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def images_of(out, name):
    return {p.name: p.read_bytes() for p in sorted((out / name).glob("*.png"))}


def losses_of(out, name):
    """The loss log without its wall-clock column."""
    with open(out / name / f"{name}_losses.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def assert_same_outputs(out, reference_out):
    for name in DONE:
        assert images_of(out, name) == images_of(reference_out, name), name
        assert losses_of(out, name) == losses_of(reference_out, name), name


def task_folders():
    """The Ray tasks' scratch folders on this machine (batch.ray_tasks.SCRATCH_PREFIX)."""
    return set(Path(tempfile.gettempdir()).glob(f"{batch.ray_tasks.SCRATCH_PREFIX}*"))


def kill_when_checkpointed(out, name, killed, signum=signal.SIGKILL, timeout=300):
    """In a thread: once `name` has a checkpoint, kill the process that holds its outputs (its lock's pid),
    in `out` or, for a Ray task, in the task's scratch folder on its node (this machine). Folders that were
    there before are not this batch's (an earlier run's killed task: its pid is dead, or another process's)."""
    earlier = task_folders()

    def holder():
        for folder in [out / name] + sorted(task_folders() - earlier):
            try:
                if (folder / f"{name}.checkpoint.npz").is_file():
                    return int((folder / f".{name}.png.lock").read_text() or 0)
            except (OSError, ValueError):
                pass
        return 0

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = holder()
            if pid and pid != os.getpid():
                os.kill(pid, signum)
                killed.append(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------ the jobs file

def test_the_issue_example_expands_the_sweep_with_paths_relative_to_the_file(tmp_path):
    (tmp_path / "images").mkdir()
    content, style = write_pair(tmp_path / "images")
    (tmp_path / "w.npz").write_bytes(b"")
    (tmp_path / "jobs.toml").write_text("""
[defaults]
recipe = "preview"
weights = "w.npz"
size = 64
[sweep]
style_weight = [0.1, 1.0]
seed = [1, 2]
[[job]]
name = "tubingen-starry"
content = "images/content.png"
style = ["images/style.png"]
""")
    jobs = jobsfile.load_jobs(tmp_path / "jobs.toml")
    assert [j.name for j in jobs] == [f"tubingen-starry-style_weight={w}-seed={s}"
                                      for w in ("0.1", "1.0") for s in (1, 2)]
    assert [(j.overrides, j.seed) for j in jobs] == [({"size": 64, "style_weight": w}, s)
                                                     for w in (0.1, 1.0) for s in (1, 2)]
    job = jobs[0]
    assert (job.recipe, job.content, job.weights) == ("preview", str(content), str(tmp_path / "w.npz"))
    assert job.styles == (Style(str(style), 1.0),)


def test_json_lines_a_job_per_line_with_its_own_sweep(tmp_path):
    content, style = write_pair(tmp_path)
    lines = [{"content": "content.png", "style": "style.png", "recipe": "preview", "scales": "32,48"},
             {"name": "b", "content": "content.png", "styles": ["style.png", "style.png"],
              "style_blend_weights": [1, 3], "style_layers": ["conv1_1", "conv2_1"],
              "sweep": {"content_weight": [1, 2]}}]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    a, b1, b2 = jobsfile.load_jobs(tmp_path / "jobs.jsonl")
    assert a.name == "content-style" and [l.size for l in a.schedule] == [32, 48]
    assert (b1.name, b2.name) == ("b-content_weight=1", "b-content_weight=2")
    assert [s.weight for s in b1.styles] == [1.0, 3.0]
    assert b2.overrides == {"style_layers": ("conv1_1", "conv2_1"), "content_weight": 2.0}
    assert b2.resolved_recipe().style_layers == ("block1_conv1", "block2_conv1")


def test_every_bad_entry_is_reported_with_file_entry_and_key(tmp_path, capsys):
    write_pair(tmp_path)
    path = tmp_path / "jobs.toml"
    path.write_text("""
[defaults]
recipe = "previeww"
[sweep]
seed = 3
style_weight = [0.1, "much"]
[[job]]
name = "a"
content = "content.png"
style = "style.png"
sizee = 64
[[job]]
name = "b"
content = "missing.png"
style = "style.png"
iterations = 5.5
[[job]]
name = "c"
content = "content.png"
style = "style.png"
recipe = "preview"
tv_weight = 1.0
[[job]]
name = "a"
content = "content.png"
style = "style.png"
""")
    with pytest.raises(jobsfile.JobsFileError) as caught:
        jobsfile.load_jobs(path)
    problems = caught.value.problems
    expected = [("[sweep]", "seed: a sweep needs a non-empty list"),
                ("[sweep]", "style_weight='much': expected float"),
                ("[defaults]", "recipe: unknown recipe 'previeww'; did you mean preview?"),
                ("job 1 (a)", "sizee: unknown key; did you mean size?"),
                ("job 2 (b)", f"content: no such file {tmp_path / 'missing.png'}"),
                ("job 2 (b)", "iterations='5.5': expected int"),
                ("job 3 (c)", "tv_weight"),
                ("job 4 (a)", "name: a is also the name of job 1 (a)")]
    assert len(problems) == len(expected), problems
    for (entry, text), line in zip(expected, problems):
        assert line.startswith(f"{path}: {entry}: ") and text in line, line
    code, out, err = run_main(["batch", path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == len(expected)
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_bad_default_is_reported_once_not_again_per_job(tmp_path):
    """Issue 20.13: a bad content in [defaults] also gave "give both content and style" for every job."""
    write_pair(tmp_path)
    path = tmp_path / "jobs.toml"
    path.write_text('[defaults]\ncontent = "nothere.png"\nstyle = "style.png"\n'
                    '[[job]]\nname = "a"\n[[job]]\nname = "b"\nseed = -1\n[[job]]\nname = "c"\ncontent = 5\n')
    with pytest.raises(jobsfile.JobsFileError) as caught:
        jobsfile.load_jobs(path)
    assert [line.removeprefix(f"{path}: ") for line in caught.value.problems] == [
        f"[defaults]: content: no such file {tmp_path / 'nothere.png'}",
        "job 2 (b): seed: expected a whole number of at least 0, got -1",  # its own values are still checked
        "job 3 (c): content: expected a file path, got 5"]

def test_ray_missing_says_how_to_install_it(jobs_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, out, err = run_main(["batch", jobs_file, "--out", tmp_path, "--ray"], capsys)
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[ray]'" in err, (out, err)


# ------------------------------------------------------------------------------ running

def test_local_one_by_one_records_failures_and_goes_on(reference, jobs_file):
    out, outcomes = reference
    rows = summary(out)
    assert list(rows) == ["victim"] + list(SMALL) + list(FAILING)  # every job, in the file's order
    for name in DONE:
        assert rows[name]["status"] == "done" and outcomes[name].status == "done"
        assert float(rows[name]["final_total"]) == outcomes[name].result.history[-1]["total"]
        assert (out / name / f"{name}.png").is_file() and (out / name / f"{name}.checkpoint.npz").is_file()
        here = f"{os.uname().nodename}:{os.getpid()}"
        # in this process, unless an earlier test's run fixed its TensorFlow to another thread count: then
        # one worker process runs them, so that they give the bytes they give in every other mode
        assert (rows[name]["where"] == here) == batch.driver.inline_can_run(1), rows[name]["where"]
    assert int(rows["victim"]["evaluations"]) >= VICTIM_EVALUATIONS
    for name, reason in FAILING.items():
        assert rows[name]["status"] == "failed" and reason in rows[name]["reason"], rows[name]
    assert outcomes["overflow"].stopped == "non-finite"
    # the sweep did sweep: seeds give different images, style weights different losses
    first = images_of(out, SMALL[0])[f"{SMALL[0]}.png"]
    assert first != images_of(out, SMALL[1])[f"{SMALL[1]}.png"]
    assert rows[SMALL[0]]["final_total"] != rows[SMALL[2]]["final_total"]
    # the result is what `run(job)` alone gives (the summary's number is the run's own)
    alone = batch.run_jobs([Job(content=str(jobs_file.parent / "content.png"),
                                styles=[str(jobs_file.parent / "style.png")], recipe="preview", seed=2,
                                weights=jobsfile.load_jobs(jobs_file)[0].weights, name="alone",
                                overrides={"size": 32, "iterations": 20, "lbfgs_maxfun": 5, "init": "noise",
                                           "style_weight": 0.1},
                                output=Output(str(out / "alone.png")))], out / "alone-batch")
    assert alone[0].output == str(out / "alone.png")  # a preset output path is kept
    assert (out / "alone.png").read_bytes() == images_of(out, SMALL[1])[f"{SMALL[1]}.png"]


def test_two_worker_processes_survive_a_killed_worker_with_identical_outputs(reference, jobs_file, tmp_path):
    killed = []
    watcher = kill_when_checkpointed(tmp_path, "victim", killed)
    outcomes = {o.name: o for o in batch.run_jobs(jobsfile.load_jobs(jobs_file), tmp_path, workers=2)}
    watcher.join(timeout=1)
    assert killed, "the victim finished before it could be killed"
    victim = outcomes["victim"]
    assert victim.status == "done" and victim.attempts == 2 and victim.resumed_from > 0, victim.record()
    assert str(killed[0]) not in victim.where  # the retry ran in a new worker process
    assert {o.where for o in outcomes.values()} - {victim.where}  # two workers shared the jobs
    assert all(outcomes[name].status == "done" for name in DONE)
    assert not list(tmp_path.rglob("*.part*")), "a killed writer's temporary files are cleaned up"
    assert_same_outputs(tmp_path, reference[0])


@pytest.fixture(scope="module")
def ray_cluster():
    # Nothing but 127.0.0.1: Ray's single-node mode (read when ray is imported; ray.init's
    # _node_ip_address="127.0.0.1" alone is replaced by this host's network address), no usage report.
    # Set only while it starts: inherited by test_cluster's `ray start`s, it kept their worker nodes out.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        import ray  # installed by the test extras (.ci/run: pip install -e .[test,ray])

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING", runtime_env={"py_modules": [str(ROOT / "legacy_nst")]})
    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    yield ray
    ray.shutdown()


def test_ray_cluster_survives_a_killed_worker_with_identical_outputs(ray_cluster, reference, jobs_file, tmp_path):
    """... and the killed task's scratch folder (its `finally` never ran) is removed by the node's next task."""
    earlier = task_folders()
    killed = []
    watcher = kill_when_checkpointed(tmp_path, "victim", killed)
    outcomes = {o.name: o for o in batch.run_jobs(jobsfile.load_jobs(jobs_file), tmp_path, ray_address="auto")}
    watcher.join(timeout=1)
    assert killed, "the victim finished before it could be killed"
    assert task_folders() - earlier == set()
    victim = outcomes["victim"]
    assert victim.status == "done" and victim.attempts == 2 and victim.resumed_from > 0, victim.record()
    node = ray_cluster.get_runtime_context().get_node_id()[:8]
    assert all(outcomes[n].where.startswith(f"ray node {node} ") for n in DONE)
    assert all(outcomes[name].status == "done" for name in DONE)
    assert [outcomes[n].status for n in FAILING] == ["failed", "failed"]
    assert_same_outputs(tmp_path, reference[0])


def test_an_interrupted_batch_resumes_where_it_was_cut(reference, jobs_file, tmp_path, capsys):
    """Ctrl-C on the driver of `batch --workers 2`: finished jobs are kept, the victim keeps its checkpoint;
    the same command again (here one by one, in this process) skips the done jobs and resumes the victim."""
    argv = cli_command("batch", jobs_file, "--out", tmp_path, "--workers", "2")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(tmp_path / "stderr1.txt", "w") as err:
        driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        checkpoint = tmp_path / "victim" / "victim.checkpoint.npz"
        lock = tmp_path / "victim" / ".victim.png.lock"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None and not (
                checkpoint.is_file() and lock.is_file() and lock.read_text()):
            time.sleep(0.02)
        # the victim's worker held (SIGSTOP) once it has checkpointed, so that it is still running when the
        # driver is interrupted, however fast this machine is; it goes on (SIGCONT) to see the interrupt
        worker = int(lock.read_text())
        os.kill(worker, signal.SIGSTOP)
        try:
            while time.monotonic() < deadline and driver.poll() is None and not (
                    (tmp_path / "summary.csv").is_file()
                    and any(r["status"] == "done" for r in summary(tmp_path).values())):
                time.sleep(0.05)
            driver.send_signal(signal.SIGINT)
            time.sleep(0.5)
        finally:
            os.kill(worker, signal.SIGCONT)
        out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, (out, (tmp_path / "stderr1.txt").read_text())
    first = summary(tmp_path)
    victim = (first["victim"], sorted(p.name for p in (tmp_path / "victim").iterdir()))  # when one fails
    assert first["victim"]["status"] == "interrupted" and checkpoint.is_file(), victim
    done_first = {n for n, row in first.items() if row["status"] == "done"}
    assert done_first and (tmp_path / "victim" / "victim.partial.png").is_file(), victim
    code, out, err = run_main(["batch", jobs_file, "--out", tmp_path], capsys)
    assert code == 1, err  # the two failing jobs fail again
    assert f"{len(DONE) + len(FAILING)} jobs: {len(DONE)} done ({len(done_first)} by an earlier run), 2 failed" in out
    records = {r["name"]: r for r in json.loads((tmp_path / "summary.json").read_text())["jobs"]}
    assert {n for n, r in records.items() if r["skipped"]} == done_first
    assert records["victim"]["status"] == "done" and records["victim"]["resumed_from"] > 0
    assert not (tmp_path / "victim" / "victim.partial.png").exists()
    assert_same_outputs(tmp_path, reference[0])


def small_jobs(jobs_file, out, count=2):
    """The first `count` sweep jobs, with their outputs in `out` as run_jobs would place them."""
    jobs = [batch.jobs.with_output(job, i, out) for i, job in enumerate(
        [job for job in jobsfile.load_jobs(jobs_file) if job.name in SMALL][:count])]
    for job in jobs:
        os.makedirs(os.path.dirname(job.output.path))
    return jobs


def signalled_as_attempts_return(monkeypatch, signum):
    """batch.attempts.attempt, with `signum` sent to this process as each job's run returns, before it is reported:
    the window in which a finished job used to be lost (its worker ended without reporting it)."""
    real = batch.attempts.attempt

    def attempt(job, where=""):
        outcome = real(job, where)
        os.kill(os.getpid(), signum)
        return outcome

    monkeypatch.setattr(batch.attempts, "attempt", attempt)


@pytest.fixture
def own_signal_handlers():
    """A worker's main loop run in this process installs its handlers here: the test's come back after."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_worker_reports_the_job_that_finished_as_sigterm_came_then_stops(jobs_file, tmp_path, monkeypatch,
                                                                          own_signal_handlers):
    first, second = small_jobs(jobs_file, tmp_path)
    signalled_as_attempts_return(monkeypatch, signal.SIGTERM)
    ours, theirs = multiprocessing.Pipe()
    ours.send(first)
    ours.send(second)
    batch.processes.worker_main(theirs)  # the worker's loop, in this process
    assert ours.poll(0), "the finished job was never reported"
    outcome = ours.recv()
    assert (outcome.name, outcome.status) == (first.name, "done") and os.path.isfile(first.output.path)
    assert not ours.poll(0) and not os.path.exists(second.output.path)  # the SIGTERM then ended the worker


def test_ctrl_c_as_a_job_finishes_stops_an_inline_batch_with_that_job_done(jobs_file, tmp_path, monkeypatch):
    signalled_as_attempts_return(monkeypatch, signal.SIGINT)
    outcomes = batch.run_jobs(small_jobs(jobs_file, tmp_path), tmp_path)
    assert [o.status for o in outcomes] == ["done", "pending"], [o.reason for o in outcomes]
    assert [r["status"] for r in summary(tmp_path).values()] == ["done", "pending"]


def test_duplicate_names_and_bad_workers_are_refused(tmp_path):
    job = Job(name="same")
    with pytest.raises(UserError, match="two jobs are named 'same'"):
        batch.run_jobs([job, job], tmp_path)
    with pytest.raises(UserError, match="--workers 0"):
        batch.run_jobs([job], tmp_path, workers=0)


def test_a_worker_reads_a_weight_file_once_until_it_changes(real_weights, tmp_path, monkeypatch):
    from legacy_nst.vgg import weights

    copy = tmp_path / "w.npz"
    copy.write_bytes(real_weights.read_bytes())
    reads = []
    original = weights.load_weights
    monkeypatch.setattr(weights, "load_weights", lambda *a: reads.append(a) or original(*a))
    first = weights.load_weights_cached(copy, "vgg19", ["block2_conv1"])
    again = weights.load_weights_cached(str(copy), "vgg19", ["block1_conv2", "block2_conv1"])  # same depth
    assert again is first and len(reads) == 1
    assert not first["block1_conv1"][0].flags.writeable  # shared between runs: nobody may change them
    deeper = weights.load_weights_cached(copy, "vgg19", ["block3_conv1"])
    assert len(reads) == 2 and set(deeper) > set(first)
    os.utime(copy, ns=(0, 0))  # the file changed (its modification time)
    assert weights.load_weights_cached(copy, "vgg19", ["block2_conv1"]) is not first and len(reads) == 3


# ------------------------------------------------------------------------------ bad input, found before the start

def test_a_fifo_as_the_jobs_file_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "jobs.toml"
    os.mkfifo(fifo)
    answered = []
    reader = threading.Thread(target=lambda: answered.append(run_main(["batch", fifo, "--out", tmp_path / "o"],
                                                                      capsys)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():  # unblock the reader, so the test run can end
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO as the jobs file blocked")
    code, out, err = answered[0]
    assert code == 2 and err.count("\n") == 1 and "not a regular file" in err, err
    assert not (tmp_path / "o").exists()


def test_a_huge_sweep_is_refused_from_its_size_before_it_is_expanded(tmp_path):
    write_pair(tmp_path)
    values = ", ".join(str(v) for v in range(1000))
    (tmp_path / "jobs.toml").write_text(f"""
[sweep]
seed = [{values}]
style_weight = [{values}]
content_weight = [{values}]
[[job]]
content = "content.png"
style = "style.png"
""")
    start = time.monotonic()
    with pytest.raises(jobsfile.JobsFileError, match=r"expands to 1000000000 jobs .*1000 x 1000 x 1000"):
        jobsfile.load_jobs(tmp_path / "jobs.toml")
    assert time.monotonic() - start < 10


def test_a_large_jobs_file_converts_each_distinct_setting_once(tmp_path, monkeypatch):
    """257 000 jobs (50 MB) took 2.8 ms a job: every key of every job was converted (a file checked, a recipe
    checked) again. Values repeat: each distinct one is converted once."""
    from legacy_nst import recipes

    write_pair(tmp_path)
    lines = [json.dumps({"name": f"j{i}", "content": "content.png", "style": "style.png", "recipe": "preview",
                         "size": 32, "iterations": 5, "seed": i}) for i in range(3000)]
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    converts, overrides = [], []
    convert, override = jobsfile._convert, recipes.override
    monkeypatch.setattr(jobsfile, "_convert", lambda *a: converts.append(a) or convert(*a))
    monkeypatch.setattr(recipes, "override", lambda *a, **k: overrides.append(k) or override(*a, **k))
    jobs = jobsfile.load_jobs(tmp_path / "jobs.jsonl")
    assert [j.seed for j in jobs] == list(range(3000)) and jobs[-1].name == "j2999"
    assert len(overrides) <= 1  # 0 when an earlier test resolved the same recipe: Job's cache is process-wide
    assert len(converts) == 7 + 2 * 2999  # the seven keys once; then only the name and the seed


def test_a_directory_as_content_is_named_a_directory(tmp_path):
    write_pair(tmp_path)
    (tmp_path / "photos").mkdir()
    (tmp_path / "jobs.toml").write_text('[[job]]\ncontent = "photos"\nstyle = "style.png"\n')
    with pytest.raises(jobsfile.JobsFileError, match=r"content: .*photos is a directory; give an image file"):
        jobsfile.load_jobs(tmp_path / "jobs.toml")


@pytest.mark.parametrize("name, extra, message", [
    ("n" * 300, "", r"job n{40}\.\.\. \(300 characters\): the name is too long: .* the most this file system "
                    r"allows is 255"),
    ("n" * 240, "", r"job n{40}\.\.\. \(240 characters\): the name is too long"),
    # two levels: its snapshots are NAME_level2_at_evaluation_40.png (258 bytes; 251 without the level),
    # which the batch's check left to the run to find
    ("m" * 230, 'scales = "32,48"\n', r"job m{40}\.\.\. \(230 characters\): the name is too long: its file "
                                     r"m{40}\.\.\. would be 258 bytes"),
    ("summary.json", "", r"job 'summary.json': the name is one of the batch's own files"),
    ("Summary.CSV", "", r"job 'Summary.CSV': the name is one of the batch's own files")])
def test_a_job_name_that_cannot_name_its_files_is_refused_before_anything_is_written(tmp_path, capsys, name, extra,
                                                                                    message):
    write_pair(tmp_path)
    (tmp_path / "jobs.toml").write_text(f'[[job]]\nname = "{name}"\ncontent = "content.png"\nstyle = "style.png"\n'
                                        f'recipe = "preview"\niterations = 40\n{extra}')
    code, out, err = run_main(["batch", tmp_path / "jobs.toml", "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [(["--retries", "-1"], "--retries -1: must be 0"),
                                            (["--cpus-per-job", "0"], "--cpus-per-job 0: must be at least 1")])
def test_negative_retries_and_no_cpus_are_refused(jobs_file, tmp_path, capsys, flags, message):
    code, out, err = run_main(["batch", jobs_file, "--out", tmp_path / "out"] + flags, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_full_disk_before_the_start_names_the_file(jobs_file, tmp_path, capsys, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(batch.summary, "write_text", full)
    code, out, err = run_main(["batch", jobs_file, "--out", tmp_path / "out"], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert f"could not write {tmp_path / 'out' / 'summary.json'}: No space left on device" in err
    assert not (tmp_path / "out").exists()


def test_a_full_disk_at_the_batch_lock_names_it_and_leaves_nothing(jobs_file, tmp_path, capsys, monkeypatch):
    """The lock is the batch's first write: on a full disk it was an internal error, an empty lock left."""
    real_fdopen = os.fdopen

    def full(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        handle.write = lambda text: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return handle

    monkeypatch.setattr(batch.lock.os, "fdopen", full)
    code, out, err = run_main(["batch", jobs_file, "--out", tmp_path / "out"], capsys)
    assert code == 1 and err.count("\n") == 1 and "internal error" not in err, err
    assert f"could not write {tmp_path / 'out' / '.batch.lock'}: No space left on device" in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ reruns and two batches

def test_a_rerun_with_a_lower_budget_redoes_the_job(jobs_file, tmp_path):
    """The job's checkpoint went past the new budget: the job is redone from scratch (the longer run's image,
    snapshots and checkpoint are not presented as the new run's), as a fresh batch does it."""
    def job(iterations):
        return [dataclasses.replace(j, overrides={**j.overrides, "iterations": iterations})
                for j in jobsfile.load_jobs(jobs_file) if j.name == SMALL[0]]

    longer, = batch.run_jobs(job(20), tmp_path / "rerun")
    assert longer.status == "done" and longer.evaluations >= 20
    rerun, = batch.run_jobs(job(10), tmp_path / "rerun")
    fresh, = batch.run_jobs(job(10), tmp_path / "fresh")
    assert rerun.status == "done" and rerun.resumed_from == 0 and rerun.evaluations == fresh.evaluations < 20
    assert images_of(tmp_path / "rerun", SMALL[0]) == images_of(tmp_path / "fresh", SMALL[0])
    assert losses_of(tmp_path / "rerun", SMALL[0]) == losses_of(tmp_path / "fresh", SMALL[0])


def test_a_second_batch_on_a_running_batchs_out_is_refused(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = batch.lock.BatchLock(tmp_path)
        record = dict(lock.record, pid=sleeper.pid)
        (tmp_path / batch.lock.LOCK_NAME).write_text(json.dumps(record))
        with pytest.raises(UserError, match=f"another batch \\(process {sleeper.pid}\\) is writing there"):
            batch.run_jobs([Job(name="a")], tmp_path)
        (tmp_path / batch.lock.LOCK_NAME).write_text(json.dumps(dict(record, host="elsewhere")))
        with pytest.raises(UserError, match="a batch on host elsewhere"):
            batch.run_jobs([Job(name="a")], tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not (tmp_path / "summary.json").exists()
    for stale in (dict(record, pid=sleeper.pid), dict(record, boot_id="another boot", pid=os.getpid() + 1)):
        (tmp_path / batch.lock.LOCK_NAME).write_text(json.dumps(stale))  # its batch is gone: taken over
        lock = batch.lock.BatchLock(tmp_path)
        lock.acquire()
        assert json.loads((tmp_path / batch.lock.LOCK_NAME).read_text())["pid"] == os.getpid()
        lock.release()
        assert not (tmp_path / batch.lock.LOCK_NAME).exists()


def test_a_killed_driver_takes_its_workers_with_it_and_a_rerun_finishes_its_jobs(jobs_file, tmp_path, capsys):
    """SIGKILL on `batch --workers 2`: its workers die with it (they kept computing and writing with parent
    1, and a rerun in that window marked their jobs failed); the rerun does every job."""
    small = tmp_path / "small.toml"
    small.write_text(jobs_file.read_text().split("[[job]]\nname = \"victim\"")[0] + "\n[[job]]\nname = \"sweep\"\n"
                     "sweep = {seed = [1, 2]}\niterations = 60\n")
    for name in ("content.png", "style.png"):
        (tmp_path / name).write_bytes((jobs_file.parent / name).read_bytes())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    driver = subprocess.Popen(cli_command("batch", small, "--out", tmp_path / "out", "--workers", "2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    lock = tmp_path / "out" / batch.lock.LOCK_NAME
    deadline = time.monotonic() + 120
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:
        with contextlib.suppress(OSError, ValueError):
            workers = json.loads(lock.read_text())["workers"]
        time.sleep(0.05)
    assert len(workers) == 2, "the workers never started"
    while time.monotonic() < deadline and not list((tmp_path / "out").glob("*/*.checkpoint.npz")):
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    gone = time.monotonic() + 10
    while time.monotonic() < gone and any(liveness.may_run(w) for w in workers):
        time.sleep(0.05)
    assert not any(liveness.may_run(w) for w in workers), "a worker outlived its driver"
    code, out, err = run_main(["batch", small, "--out", tmp_path / "out"], capsys)
    assert code == 0 and "2 jobs: 2 done" in out, (out, err)
    assert [r["status"] for r in summary(tmp_path / "out").values()] == ["done", "done"]


def test_ray_ships_the_whole_package():
    """Ray's py_modules gets legacy_nst/ itself, wherever in it the batch package lies."""
    assert Path(batch.ray_pool.PACKAGE_DIR) == Path(legacy_nst.__file__).resolve().parent


def test_ray_local_settings_do_not_outlive_the_start(monkeypatch):
    """--ray local's single-node switch is set while Ray starts, then removed (inherited by a later
    `ray start`, it kept that cluster's worker nodes out); a value the user set is theirs and stays."""
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    with batch.pools.environment({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"},
                            replace=False):
        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"
