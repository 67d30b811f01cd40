"""Batches on a real two-node Ray cluster on loopback (issue 22): the head on 127.0.0.2 and a worker node on
127.0.0.3, each with one CPU, started here with `ray start --block` (HOME in a temporary folder, each node
in its own session, stopped by its process group). The worker node runs in a private mount namespace with
a tmpfs over the test's temporary folders, this checkout and the shared weights: it cannot see any file of
the driver's, so inputs, weights, checkpoints and outputs must travel through Ray.

In every run: every job done once (attempts counted), every file on the driver, summary.json right, and
the images and losses identical to the same jobs run one by one in this process (test_batch's oracle:
the result does not depend on the thread count)."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from support import ROOT, cli_command, small_job_defaults, write_pair

from legacy_nst.tools import batch

HEAD, WORKER = "127.0.0.2", "127.0.0.3"
JOBS = ("long", "a-seed=1", "a-seed=2", "a-seed=3")  # the long one first: a node that joins gets the rest
pytestmark = pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                                reason="the isolated worker node needs unshare -m as root")


def free_port():
    with socket.socket() as s:
        s.bind((HEAD, 0))
        return s.getsockname()[1]


class Cluster:
    """Nodes started with `ray start --block`, each in its own process group (stopped by its pid)."""

    def __init__(self, hidden):
        self.hidden = hidden  # folders the worker node must not see
        self.temp = tempfile.mkdtemp(prefix="nst-ray-", dir="/tmp")  # short: Ray's socket paths must fit
        home = Path(self.temp) / "home"
        home.mkdir()
        self.port, self.dashboard = free_port(), free_port()
        self.env = dict(os.environ, HOME=str(home), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",  # multi-node, whatever this process was given
                        PYTHONPATH="",  # no copy of the package from here: tasks get the driver's
                        # a dead node is noticed within ~2 s, not Ray's default 30
                        RAY_health_check_period_ms="500", RAY_health_check_timeout_ms="1000",
                        RAY_health_check_failure_threshold="3",
                        # a node's agents start slowly on a loaded machine: its raylet waited 15 s, then died
                        RAY_agent_register_timeout_ms="120000")
        self.workers = []
        self.head = self._start(["--head", "--node-ip-address", HEAD, "--port", str(self.port),
                                 "--include-dashboard", "true", "--dashboard-host", HEAD,
                                 "--dashboard-port", str(self.dashboard),
                                 "--ray-client-server-port", str(free_port()), "--temp-dir", self.temp])
        assert self.wait_for_nodes(1, node=self.head), "the head node did not start"

    @property
    def address(self):
        return f"{HEAD}:{self.port}"

    def _start(self, flags, isolated=False):
        ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                 "--metrics-export-port", "--node-manager-port", "--object-manager-port"]
        argv = [shutil.which("ray"), "start", "--num-cpus", "1", "--disable-usage-stats", "--block"] + flags + [
            item for flag in ports for item in (flag, str(free_port()))]
        if isolated:
            mounts = " && ".join(f"mount -t tmpfs tmpfs {folder}" for folder in self.hidden)
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f"{mounts} && exec \"$@\"", "sh"] + argv
        return subprocess.Popen(argv, env=self.env, cwd="/", start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def add_worker(self, isolated=True):
        """A worker node; started again if it died starting (on a loaded machine its raylet can give up
        waiting for its agents)."""
        for _ in range(2):
            node = self._start(["--address", self.address, "--node-ip-address", WORKER], isolated)
            if self.wait_for_nodes(2 + len(self.workers), node=node):
                self.workers.append(node)
                return node
            self.kill(node)
        raise AssertionError("the worker node did not join the cluster")

    def alive_nodes(self):
        probe = ("import ray, json; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
                 "print('NODES', json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))"
                 % self.address)
        out = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
                             timeout=120, cwd="/")
        lines = [line for line in out.stdout.splitlines() if line.startswith("NODES ")]
        return json.loads(lines[-1][len("NODES "):]) if lines else []

    def wait_for_nodes(self, count, timeout=240, node=None):
        """Whether the cluster has `count` live nodes within `timeout` s (False at once if `node` ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (node is None or node.poll() is None):
            if len(self.alive_nodes()) == count:
                return True
            time.sleep(0.5)
        return False

    def runs(self, node, pid):
        """Whether process `pid` is one of `node`'s (its raylet's worker, a descendant of its `ray start`)."""
        while pid > 1:
            if pid == node.pid:
                return True
            try:
                with open(f"/proc/{pid}/stat") as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                return False
        return False

    def kill(self, node):
        """A node's crash: every process it started, SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()
        if node in self.workers:
            self.workers.remove(node)

    def stop(self):
        for node in self.workers + [self.head]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGTERM)  # `ray start --block` stops its node's processes
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def jobs_toml(weights):
    return small_job_defaults(weights) + """
[[job]]
name = "long"
iterations = 120

[[job]]
name = "a"
sweep = {seed = [1, 2, 3]}
"""


@pytest.fixture(scope="module")
def jobs_file(tmp_path_factory, real_weights):
    folder = tmp_path_factory.mktemp("cluster-jobs")
    write_pair(folder, shape=(24, 32))
    weights = folder / "weights" / real_weights.name
    weights.parent.mkdir()
    shutil.copyfile(real_weights, weights)  # under the test's folders: hidden from the worker node
    path = folder / "jobs.toml"
    path.write_text(jobs_toml(weights))
    return path


@pytest.fixture(scope="module")
def reference(jobs_file, tmp_path_factory):
    """The jobs one by one in one process, at a Ray task's thread settings (one CPU a task: one thread)."""
    out = tmp_path_factory.mktemp("cluster-reference")
    env = dict(os.environ, PYTHONPATH=str(ROOT), **dict.fromkeys(batch.pools.THREAD_VARIABLES, "1"))
    subprocess.run(cli_command("batch", jobs_file, "--out", out, "--quiet"), env=env, check=True,
                   capture_output=True, timeout=400)
    assert all(r["status"] == "done" for r in records(out).values())
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, jobs_file):
    base = tmp_path_factory.getbasetemp()
    shared = (ROOT.parent / "shared").resolve()
    hidden = [str(base), str(ROOT)] + ([str(shared)] if shared.is_dir() else [])
    cluster = Cluster(hidden)
    yield cluster
    cluster.stop()


def running_tasks(node, cluster):
    """[(job name, pid)] of the tasks `node` runs now (their scratch folders' output locks; a killed task's
    folder stays behind, its pid gone)."""
    tasks = []
    for lock in Path(tempfile.gettempdir()).glob("legacy_nst-task-*/.*.png.lock"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(lock.read_text())
            if cluster.runs(node, pid):
                tasks.append((lock.name[1:-len(".png.lock")], pid))
    return tasks


def run_batch(jobs_file, out, address, cwd, timeout=400):
    """The CLI, as a user runs it against the cluster: `batch JOBS --out OUT --ray ADDRESS`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen(cli_command("batch", jobs_file, "--out", out, "--ray", address), cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def records(out):
    return {r["name"]: r for r in json.loads((out / "summary.json").read_text())["jobs"]}


def files_of(out, name):
    """Every file of a job but its settings and loss log (they hold seconds), as bytes."""
    return {p.name: p.read_bytes() for p in sorted((out / name).iterdir())
            if p.suffix == ".png" and "_losses" not in p.name}


def losses_of(out, name):
    lines = (out / name / f"{name}_losses.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, column in enumerate(header) if column != "seconds"]
    return [[line.split(",")[i] for i in keep] for line in lines]


def assert_like_the_reference(out, reference, jobs=JOBS):
    for name in jobs:
        assert files_of(out, name) == files_of(reference, name), name
        assert losses_of(out, name) == losses_of(reference, name), name
        settings, expected = (json.loads((o / name / f"{name}.json").read_text()) for o in (out, reference))
        for key in ("content", "styles", "init_image", "weights", "schedule", "algorithm"):
            assert settings[key] == expected[key], (name, key)
    for name, record in records(out).items():
        assert record["status"] == "done" and record["output"] == str(out / name / f"{name}.png"), record
        assert not record["skipped"]
    assert not list(out.rglob("*.part*")) and not list(out.rglob("*.partial.*"))


def nodes_used(out):
    return {r["where"].split()[2] for r in records(out).values()}


def test_a_worker_node_that_sees_none_of_the_drivers_files_with_a_relative_out(cluster, jobs_file, reference,
                                                                                tmp_path):
    """Inputs, weights and outputs travel through Ray; a relative --out is the driver's."""
    while len(cluster.workers) < 1:
        cluster.add_worker(isolated=True)
    driver = run_batch(jobs_file, "out", cluster.address, cwd=tmp_path)
    out_text, err = driver.communicate(timeout=400)
    assert driver.returncode == 0, (out_text, err)
    out = tmp_path / "out"
    assert f"{len(JOBS)} jobs: {len(JOBS)} done" in out_text
    assert_like_the_reference(out, reference)
    assert all(r["attempts"] == 1 for r in records(out).values())
    assert len(nodes_used(out)) == 2, records(out)  # both nodes took jobs


def test_a_node_killed_mid_batch(cluster, jobs_file, reference, tmp_path):
    """The worker node crashes (every process of it SIGKILLed) while it runs a job that has checkpointed:
    Ray retries the task on the head, which continues from the last checkpoint the task streamed."""
    while len(cluster.workers) < 1:
        cluster.add_worker(isolated=True)
    node = cluster.workers[0]
    killed, seen = [], set()
    out = tmp_path / "out"

    def kill_when_the_worker_node_checkpointed():
        """Once a job running on the worker node has a checkpoint on the driver (streamed to it)."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:
            for name, pid in running_tasks(node, cluster):
                seen.add(name)
                if (out / name / f"{name}.checkpoint.npz").is_file():
                    killed.append(name)
                    cluster.kill(node)
                    return
            time.sleep(0.02)

    driver = run_batch(jobs_file, out, cluster.address, cwd=tmp_path)
    killer = threading.Thread(target=kill_when_the_worker_node_checkpointed, daemon=True)
    killer.start()
    out_text, err = driver.communicate(timeout=400)
    killer.join(timeout=5)
    assert killed, f"no job checkpointed on the worker node (task folders seen: {seen})"
    assert driver.returncode == 0, (out_text, err)
    assert_like_the_reference(out, reference)
    victim = records(out)[killed[0]]
    assert victim["attempts"] == 2 and victim["resumed_from"] > 0, victim
    assert all(r["attempts"] == 1 for name, r in records(out).items() if name != killed[0])


def test_a_node_added_mid_batch_gets_work(cluster, jobs_file, reference, tmp_path):
    """The batch starts on the head alone (one CPU: one task in flight); a node that joins is given jobs.
    The head's task is stopped (SIGSTOP) while the node joins, so that jobs are left for it however long
    joining takes on a loaded machine; it continues (SIGCONT) once the new node runs a task."""
    for node in list(cluster.workers):
        cluster.kill(node)
    assert cluster.wait_for_nodes(1)
    driver = run_batch(jobs_file, tmp_path / "out", cluster.address, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not running_tasks(cluster.head, cluster):
        time.sleep(0.05)
    (_, pid), = running_tasks(cluster.head, cluster)
    os.kill(pid, signal.SIGSTOP)
    try:
        node = cluster.add_worker(isolated=True)
        while time.monotonic() < deadline and not running_tasks(node, cluster):
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)
    out_text, err = driver.communicate(timeout=400)
    assert driver.returncode == 0, (out_text, err)
    out = tmp_path / "out"
    assert_like_the_reference(out, reference)
    assert len(nodes_used(out)) == 2, records(out)


def test_ray_job_submit_runs_the_batch_with_the_shipped_package(cluster, jobs_file, reference, tmp_path):
    """`ray job submit --working-dir . -- python run_transfer.py batch ...`: the driver runs on the head, with
    the uploaded checkout; the outputs are written where the driver runs (here: an absolute --out)."""
    while len(cluster.workers) < 1:
        cluster.add_worker(isolated=True)
    out = tmp_path / "out"
    submit = subprocess.run([shutil.which("ray"), "job", "submit", "--address", f"http://{HEAD}:{cluster.dashboard}",
                             "--working-dir", ".", "--", "python", "run_transfer.py", "batch", str(jobs_file),
                             "--out", str(out), "--ray", "auto", "--quiet"],
                            cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=400)
    assert submit.returncode == 0, (submit.stdout[-3000:], submit.stderr[-3000:])
    assert f"{len(JOBS)} jobs: {len(JOBS)} done" in submit.stdout
    assert_like_the_reference(out, reference)
