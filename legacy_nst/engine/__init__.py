"""The algorithm as TensorFlow graphs: the only package that imports TensorFlow.

The layers above reach the engine through this module (`from .. import engine`, then `engine.Transfer(...)`).
Its graph-building names are looked up on first use (PEP 562 `__getattr__`), so importing those layers loads
no TensorFlow; the first graph, probe or thread setting loads it once (runtime.py). The two plain facts the
layers above check before any run, the devices and what cannot be tiled, are defined here, outside the graphs.
"""
import importlib
import os

DEVICES = ("auto", "cpu", "gpu")

# name -> the engine module defining it
_HOMES = {
    "Transfer": "level", "TiledTransfer": "level", "check_device": "level", "session_config": "level",
    "initial_image": "start", "blend_noise": "start", "gram": "terms",
    "FeatureProbe": "network",
    "fix_threads": "runtime", "threads_in_effect": "runtime", "tf": "runtime",
}
__all__ = ["DEVICES", "default_threads", "untileable", *_HOMES]


def default_threads():
    """The intra-op threads TensorFlow runs its kernels on unless a run fixes them: $TF_NUM_INTRAOP_THREADS,
    else one per core this process may use."""
    configured = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def untileable(recipe, masks=None):
    """Why a recipe cannot run tiled ('' if it can): the tiled objective is exact for sums over positions
    fed to an image that lives in numpy (L-BFGS, descent); Adam's image is a graph variable, per-layer
    gradient normalisation divides by a norm over the whole map, and masks are not cut into tiles."""
    if recipe.optimizer == "adam":
        return "Adam keeps the image in the graph; use --optimizer lbfgs"
    if recipe.normalize_gradients:
        return "--normalize-gradients needs each layer's whole gradient"
    if masks is not None and any(m is not None for m in masks):
        return "--style-masks are not tiled"
    return ""


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value  # looked up once
    return value
