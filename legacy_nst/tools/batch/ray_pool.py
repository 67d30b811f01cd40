"""The Ray pool: each job one task on a Ray cluster, as many in flight as the live cluster has room for.

The driver reads every input once and puts it in the object store; a task (ray_tasks.ray_attempt) runs its
job in a scratch folder on its node's local disk and returns every file it wrote as bytes; only the driver
writes under --out. Checkpoints and snapshots travel through a small actor on the driver's node (FileStore)
as the task saves them, so a retry (Ray's, on any node) continues from the last one, and an interrupted
job's work is kept."""
import collections
import contextlib
import hashlib
import json
import math
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .attempts import past_budget, start_afresh
from .outcomes import JobOutcome
from .pools import INTERRUPT_GRACE, POLL, THREAD_VARIABLES, environment
from .ray_tasks import ray_attempt
from ...atomic import atomic_path
from ...errors import UserError
from ...images import load_image
from ...runner.outputs import OutputPaths
from ...vgg import weights

RAY_INSTALL = "--ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install 'ray>=2.10')"
PACKAGE_DIR = str(Path(__file__).resolve().parents[2])  # legacy_nst/, shipped to Ray's nodes (py_modules)


class FileStore:
    """A Ray actor on the driver's node: the latest checkpoint of each running job (what an attempt starts
    from) and the files tasks saved that the driver has not written yet. Each call is one message, so a
    task's put returns only once the store has its bytes."""

    def __init__(self):
        self.checkpoints, self.pending, self.attempts = {}, [], collections.Counter()

    def seed(self, name, data):
        """Before a job's first attempt: the checkpoint the driver has on disk (None: start afresh)."""
        self.checkpoints[name] = data
        self.attempts[name] = 0

    def begin(self, name):
        """An attempt starts (the driver's or one of Ray's retries): its number and the checkpoint to continue."""
        self.attempts[name] += 1
        return self.attempts[name], self.checkpoints.get(name)

    def put(self, name, filename, data, is_checkpoint):
        if is_checkpoint:
            self.checkpoints[name] = data
        self.pending.append((name, filename, data))

    def drain(self):
        pending, self.pending = self.pending, []
        return pending

    def forget(self, name):
        self.checkpoints.pop(name, None)


class RayPool:
    """Tasks on a Ray cluster; as many in flight as the live cluster has room for (or `slots`)."""

    RESOURCES_EVERY = 1.0  # s between looks at the cluster's resources (nodes come and go)

    def __init__(self, address, cpus_per_job, retries, slots=None):
        # --ray local: a one-machine cluster on 127.0.0.1, not this host's network address (ray.init's
        # _node_ip_address="127.0.0.1" is replaced by that address): Ray's single-node mode, read when ray
        # is imported; and no usage report sent anywhere. Only while Ray starts: left in this process's
        # environment, it was inherited by every `ray start` the process ran later, whose nodes then
        # refused to join a cluster ("multi-node clusters are not supported").
        local = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        with environment(local if address == "local" else {}, replace=False):
            self._start(address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        self.cpus = max(1, int(cpus_per_job or 1))
        self.retries, self.fixed_slots = retries, slots
        self.looked, self.room, self.gpus = -math.inf, 1, False
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.store = ray.remote(FileStore).options(num_cpus=0, scheduling_strategy=here).remote()
        self.remote = ray.remote(ray_attempt)
        self.refs = {}
        self.inputs = {}  # what was put in the object store: (kind, path) -> [ref] (or an error)
        self.ready = []  # (task, JobOutcome) decided on the driver (an unreadable input): returned by wait()

    def _start(self, address):
        """Ray imported, and connected to `address` (or started there) unless this process already is."""
        try:
            import ray
        except ImportError:
            raise UserError(RAY_INSTALL) from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        self.scratch = None
        if self.started_here:
            options = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
            if not os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # not a `ray job submit` job (its own env)
                # The driver's own copy of the package runs on every node (py_modules), and an empty working
                # directory keeps Ray from putting the driver's script directory and current directory
                # first on the workers' sys.path, where a node's other copy of the package would win.
                self.scratch = tempfile.mkdtemp(prefix="legacy_nst-ray-")
                options["runtime_env"] = {"py_modules": [PACKAGE_DIR],
                                          "working_dir": self.scratch}
            options["address"] = address
            handler = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(**options)
            except ConnectionError as exc:
                raise UserError(f"--ray {address}: no Ray cluster there ({exc}); start one with "
                                "`ray start --head`, or use --ray local") from None
            if callable(handler) and threading.current_thread() is threading.main_thread():
                # ray.init installs its own SIGTERM handler (it logs and exits 1, the batch's summary
                # unwritten); the front end's handler, which stops the batch cleanly, is put back
                signal.signal(signal.SIGTERM, handler)

    @property
    def slots(self):
        """Tasks to keep in flight: what the live cluster's nodes can run at once, re-read as nodes join and
        leave (read once at the start, a node that joined mid-batch got no work, and a head started with
        --num-cpus 0 capped the batch at 1); at least 1, so that an autoscaler sees the demand."""
        if self.fixed_slots:
            return self.fixed_slots
        now = time.monotonic()
        if now - self.looked >= self.RESOURCES_EVERY:
            self.looked = now
            resources = self.ray.cluster_resources()
            self.gpus = resources.get("GPU", 0) > 0
            self.room = int(resources.get("GPU", 0)) if self.gpus else int(resources.get("CPU", 0)) // self.cpus
        return max(1, self.room)

    def _put(self, kind, path, read):
        key = (kind, str(path))
        if key not in self.inputs:
            try:
                self.inputs[key] = [self.ray.put(read(path))]
            except UserError as exc:
                self.inputs[key] = exc
        if isinstance(self.inputs[key], UserError):
            raise self.inputs[key]
        return self.inputs[key]

    def _weights(self, job):
        path = weights.resolve(job.resolved_recipe().network, job.weights)
        stat = path.stat()
        key = ("weights", str(path))
        if key not in self.inputs or self.inputs[key][0] != (stat.st_size, stat.st_mtime_ns):
            data = path.read_bytes()
            self.inputs[key] = ((stat.st_size, stat.st_mtime_ns),
                                (hashlib.sha256(data).hexdigest(), path.suffix, [self.ray.put(data)]))
        return self.inputs[key][1]

    def _inputs(self, job):
        """The job's inputs as object refs, each file read and checked once per batch (UserError: a bad one)."""
        def image(value):
            if value is None or isinstance(value, np.ndarray):
                return None if value is None else [self.ray.put(value)]
            return self._put("image", value, lambda path: load_image(str(path)))

        if job.normalise_on:
            raise UserError("normalise_on: not supported with --ray (its images would be read on each node)")
        if job.content is None and not job.styles:
            images_ = {"content": None, "init_image": image(job.init_image)}  # the demo pair, drawn by the task
        else:
            images_ = {"content": image(job.content), "init_image": image(job.init_image)}
        images_.update({f"style-{i}": image(style.image) for i, style in enumerate(job.styles)})
        masks = [None if s.mask is None or isinstance(s.mask, np.ndarray) else
                 self._put("mask", s.mask, lambda path: Path(path).read_bytes()) for s in job.styles]
        return {"images": images_, "masks": masks, "weights": self._weights(job)}

    def submit(self, task):
        job = task.job
        try:
            inputs = self._inputs(job)
        except (UserError, OSError) as exc:
            reason = str(exc) if isinstance(exc, UserError) else f"{exc.filename}: {exc.strerror}"
            self.ready.append((task, JobOutcome(job.name, status="failed", reason=reason, output=job.output.path)))
            return
        paths = OutputPaths(job.output.path)
        if os.path.isfile(paths.checkpoint) and past_budget(job, paths.checkpoint):
            start_afresh(paths)
        saved = Path(paths.checkpoint).read_bytes() if os.path.isfile(paths.checkpoint) else None
        self.ray.get(self.store.seed.remote(job.name, saved))  # in the store before the task asks for it
        gpu = job.device == "gpu" or (job.device == "auto" and self.gpus)
        # one task holds one GPU (TensorFlow keeps the GPU it first saw for the worker's life: a worker
        # that ran a GPU task is not reused, max_calls=1); Ray retries a task whose worker or node died,
        # from the last checkpoint the store has
        options = {"num_cpus": 1 if gpu else self.cpus, "num_gpus": 1 if gpu else 0, "max_retries": self.retries,
                   "retry_exceptions": False,
                   "runtime_env": {"env_vars": dict.fromkeys(THREAD_VARIABLES, str(self.cpus))}}
        if gpu:
            options["max_calls"] = 1
        self.refs[self.remote.options(**options).remote(job, inputs, self.store)] = task

    def _write(self, job, filename, data):
        """A file a task made, written on the driver beside the job's result (atomically)."""
        path = os.path.join(os.path.dirname(os.path.abspath(job.output.path)), filename)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
        return path

    def _drain(self):
        by_name = {task.job.name: task.job for task in self.refs.values()}
        for name, filename, data in self.ray.get(self.store.drain.remote()):
            if name in by_name:
                self._write(by_name[name], filename, data)

    def wait(self, timeout=POLL):
        if self.ready:
            ready, self.ready = self.ready, []
            return ready
        done, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        self._drain()  # every file a finished task streamed is in the store before its result: written first
        return [self._collect(ref) for ref in done]

    def _collect(self, ref):
        task = self.refs.pop(ref)
        job = task.job
        exceptions = self.ray.exceptions
        try:
            outcome, files, number = self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return task, JobOutcome(job.name, status="interrupted", reason="interrupted (task cancelled)")
        except exceptions.RayTaskError as exc:  # raised by our code outside attempt(): a bug, not retried
            return task, JobOutcome(job.name, status="failed", reason=f"internal error: {exc}")
        except exceptions.RayError as exc:  # its worker or node died, and Ray's retries are spent
            return task, JobOutcome(job.name, status="failed", output=job.output.path,
                                 reason=f"its Ray worker died ({type(exc).__name__}); gave up after "
                                        f"{self.retries + 1} attempts")
        finally:
            self.store.forget.remote(job.name)
        paths = OutputPaths(job.output.path)
        settings = os.path.basename(paths.settings)
        if settings in files:
            files[settings] = described_as_given(files[settings], job)
        written = {name: self._write(job, name, data) for name, data in files.items()}
        if outcome.status == "done":
            with contextlib.suppress(FileNotFoundError):
                os.remove(paths.partial)  # superseded by the result, as a run in place removes it
        outcome.files = {kind: written.get(os.path.basename(path), path) for kind, path in outcome.files.items()}
        outcome.output = job.output.path
        task.attempts += number - 1  # Ray's own retries, counted as the driver counts its own
        return task, outcome

    def interrupt(self):
        for ref in self.refs:
            self.ray.cancel(ref)  # KeyboardInterrupt in the task: the run keeps its partial image
        deadline = time.monotonic() + INTERRUPT_GRACE
        while self.refs and time.monotonic() < deadline:
            yield from self.wait(timeout=1.0)

    def close(self):
        for ref in self.refs:  # still running after an interrupt: stopped
            self.ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            self._drain()  # what the stopped tasks saved (their checkpoints) is kept
        self.refs.clear()
        if self.started_here:
            self.ray.shutdown()
        if self.scratch:
            os.rmdir(self.scratch)


def described_as_given(data, job):
    """A task's settings file (bytes) naming the inputs as the job gave them: the task read them from the
    object store, as arrays, and the weights from its node's cache; the file reads as a run in place
    writes it (loop._Execution._settings)."""
    def described(image):
        return "(array)" if isinstance(image, np.ndarray) else (None if image is None else str(image))

    settings = json.loads(data)
    settings["content"] = described(job.content)
    settings["styles"] = [{"image": described(s.image), "weight": s.weight} for s in job.styles]
    settings["init_image"] = described(job.init_image)
    settings["weights"] = job.weights
    return json.dumps(settings, indent=1).encode("utf-8")
