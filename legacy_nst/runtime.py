"""TensorFlow, imported once and quietly, only by the modules that build graphs.

Importing it costs seconds, so nothing on the path of `--help`, `--list-recipes` or argument checking
imports this module; the run loop does, when a run starts."""
import contextlib
import os


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
