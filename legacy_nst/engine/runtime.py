"""TensorFlow, imported once and quietly, only by the modules that build graphs.

Importing it costs seconds, so nothing on the path of `--help`, `--list-recipes` or argument checking
imports this module; the run loop does, when a run starts."""
import contextlib
import os

from . import default_threads
from ..errors import ThreadsFixed


@contextlib.contextmanager
def quiet_stderr():
    """TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) bypasses its log-level settings and
    would bury the progress bar, so file descriptor 2 is closed around the import.
    Python exceptions still propagate and are reported after it is restored."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with quiet_stderr():
    import tensorflow as tf

    # Probe the devices now, quietly: otherwise the first graph op to need them prints CUDA's cuInit
    # failure on every machine without a GPU.
    tf.config.list_physical_devices()


def threads_in_effect():
    """The intra-op threads this process's TensorFlow runs (or will run) its kernels on."""
    return tf.config.threading.get_intra_op_parallelism_threads() or default_threads()


def fix_threads(threads):
    """Run this process's kernels on `threads` intra-op threads (None: keep what it has, by default one per
    core); returns the count in effect. ThreadsFixed when another count is already fixed.

    oneDNN splits its float32 sums over this pool, so results depend on it: on an AVX2 EPYC a preview job's
    loss after 30 evaluations was 2.60e7 on 2 threads and 2.72e7 on 1. The pool is process-wide and fixed by
    the process's first session; a session's own intra_op_parallelism_threads does not change it (measured:
    the same bytes with 1 and 2 there), so a job's count is set here, before its first session."""
    if threads is None or threads_in_effect() == threads:
        return threads_in_effect()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # "cannot be modified after initialization"
        raise ThreadsFixed(f"threads {threads}: this process's TensorFlow already runs {threads_in_effect()} "
                           "CPU threads, fixed by its first run; run the job in a new process (a batch does "
                           "this by itself)") from None
    return threads
