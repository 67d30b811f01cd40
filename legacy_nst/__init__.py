"""legacy_nst: classic Gatys-style neural style transfer as TF1-style graphs on today's TensorFlow."""
import contextlib
import os


@contextlib.contextmanager
def quiet_stderr():
    """TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) bypasses its log-level settings and
    would bury the progress bar, so file descriptor 2 is closed around imports and session creation.
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
    import tensorflow

    # Probe the devices now, quietly: otherwise the first graph op to need them prints CUDA's cuInit
    # failure on every machine without a GPU.
    tensorflow.config.list_physical_devices()

__version__ = "0.1.0"
