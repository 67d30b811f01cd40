"""One job as a Ray task, on whichever node runs it. Nothing travels as a path: the task gets its inputs as
object refs, runs its job in a scratch folder on its node's local disk, streams its checkpoints and
snapshots to the driver's file store as it saves them, and returns every file it wrote as bytes."""
import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from . import attempts
from ...atomic import atomic_path
from ...liveness import HOST, may_run
from ...runner.outputs import OutputPaths

WEIGHTS_CACHE = "legacy_nst-weights"  # under the node's temporary directory: <sha256><suffix>, written once
STREAMED = ("checkpoint", "snapshot", "scale")  # files sent to the driver as soon as they are saved
SCRATCH_PREFIX = "legacy_nst-task-"  # a Ray task's folder in its node's temporary directory
SCRATCH_OWNER = ".owner"  # in it: the pid of the worker process whose task it is


def node_weights(digest, suffix, data):
    """The weight file on this node's local disk, written once per content (`data`: [object ref])."""
    import ray

    folder = Path(tempfile.gettempdir()) / WEIGHTS_CACHE
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        folder.mkdir(exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another task on this node wrote it first
            with atomic_path(str(path), overwrite=False) as tmp:
                with open(tmp, "wb") as f:
                    f.write(ray.get(data[0]))
    return str(path)


def remove_orphaned_scratch(directory):
    """Scratch folders of tasks whose worker died (a SIGKILL, a node's crash: no `finally` ran), removed by
    the next task on the node, so that a cluster's disks do not fill with dead tasks' checkpoints. Their
    work is not lost: what a task saves is streamed to the driver as it is written (STREAMED)."""
    for folder in Path(directory).glob(f"{SCRATCH_PREFIX}*"):
        try:
            pid = int((folder / SCRATCH_OWNER).read_text())
        except (OSError, ValueError):  # being made, or not ours
            continue
        if not may_run(pid):
            shutil.rmtree(folder, ignore_errors=True)


def ray_attempt(job, inputs, store):
    """One job as a Ray task: returns (JobOutcome, {file name: bytes}, attempt number). `inputs` holds object
    refs (nested, so that each is fetched only when needed): decoded images, mask files, the weight file."""
    import ray

    if threading.current_thread() is threading.main_thread():
        # Ray cancels a task by simulating SIGINT in its worker, which does nothing where SIGINT is ignored
        # (inherited: a cluster started from a background job of a script); the run must see Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)
    number, saved = ray.get(store.begin.remote(job.name))
    node = ray.get_runtime_context().get_node_id()[:8]
    where = f"ray node {node} {HOST}:{os.getpid()}"
    remove_orphaned_scratch(tempfile.gettempdir())
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    try:
        with open(os.path.join(scratch, SCRATCH_OWNER), "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        output = os.path.join(scratch, os.path.basename(job.output.path))
        if saved is not None:
            with open(OutputPaths(output).checkpoint, "wb") as f:
                f.write(saved)
        masks = []
        for i, (style, mask) in enumerate(zip(job.styles, inputs["masks"])):
            if mask is not None:
                path = os.path.join(scratch, f"mask-{i}{Path(str(style.mask)).suffix}")
                with open(path, "wb") as f:
                    f.write(ray.get(mask[0]))
                mask = path
            masks.append(mask)
        images_ = {key: None if ref is None else ray.get(ref[0]) for key, ref in inputs["images"].items()}
        styles = tuple(dataclasses.replace(style, image=images_[f"style-{i}"], mask=mask)
                       for i, (style, mask) in enumerate(zip(job.styles, masks)))
        weights_path = job.weights if inputs["weights"] is None else node_weights(*inputs["weights"])
        local = dataclasses.replace(job, content=images_["content"], styles=styles,
                                    init_image=images_["init_image"], weights=weights_path,
                                    output=dataclasses.replace(job.output, path=output, overwrite=True))

        def on_saved(kind, path):
            if kind in STREAMED:
                with open(path, "rb") as f:
                    ray.get(store.put.remote(job.name, os.path.basename(path), f.read(), kind == "checkpoint"))

        outcome = attempts.attempt(local, where, on_saved)
        files = {}
        for name in sorted(os.listdir(os.path.dirname(output))):
            path = os.path.join(scratch, name)
            if os.path.isfile(path) and not name.startswith(".") and not name.startswith("mask-"):
                with open(path, "rb") as f:
                    files[name] = f.read()
        return outcome, files, number
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
