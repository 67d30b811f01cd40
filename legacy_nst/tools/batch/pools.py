"""What the three pools share (inline.InlinePool, processes.ProcessPool, ray_pool.RayPool): the task each is
given and the mark of a worker that died with one, their waits, and the thread variables each job's process
runs with. A pool has `slots` (tasks to keep in flight), submit(task), wait() -> [(task, JobOutcome or
Died)], interrupt() (stop the running tasks, yielding what they return) and close()."""
import contextlib
import dataclasses
import os

INTERRUPT_GRACE = 60.0  # seconds running jobs get to keep their partial image and records after Ctrl-C
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")  # per worker: its jobs' threads
POLL = 0.5  # seconds between looks at the workers (a result wakes the driver at once)


@dataclasses.dataclass
class Task:
    """One job in the driver's hands: its place in the batch, and its attempts so far."""

    index: int
    job: object
    attempts: int = 0
    seconds: float = 0.0
    started: float = 0.0


class Died:
    """A worker died while it held a task (killed, out of memory, a crashed node)."""

    def __init__(self, reason):
        self.reason = reason


@contextlib.contextmanager
def environment(values, replace=True):
    """`values` in os.environ for the duration, then the environment as it was; with replace=False a
    variable that is already set (the user's) is left as it is."""
    if not replace:
        values = {name: value for name, value in values.items() if name not in os.environ}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
