"""Checkpoints: everything needed to continue a run exactly, and the fingerprint of what it was made from.

A checkpoint is an .npz of plain arrays plus one JSON string (never a pickle). `load` validates every field
and array (presence, shape, dtype, finiteness) and `check_matches` compares the fingerprint of the inputs
(content, styles, init image, weights) and the algorithm with the run being resumed, before any graph is
built, naming what differs.
"""
import dataclasses
import json
import math
import os

import numpy as np

from . import identity
from .identity import digest
from ..errors import UserError

FORMAT = "legacy-nst checkpoint 2"


def fingerprint(recipe, content, styles, blend, init_image, seed, sizes, extra=None):
    """What a resumed run must share with the run that made the checkpoint (identity.of_arrays; budgets may
    grow); the weights' digest is added as "weights" once they are read (`weights_digest`). `extra`: the
    job's colour mode, style scales and mask digests (preserve_colors, style_scales, masks)."""
    return identity.of_arrays(recipe, content, styles, blend, init_image, seed, sizes, **(extra or {}))


def weights_digest(params):
    return digest(*[a for layer in sorted(params) for a in params[layer]])


@dataclasses.dataclass
class Checkpoint:
    fingerprint: dict
    level: int  # the schedule level the state belongs to
    state: dict  # the optimiser's: iteration, evaluations, image, and Adam's moments
    history: list  # the run's rows so far
    tracker_meta: dict
    tracker_arrays: dict
    term_names: tuple

    def save(self, write_with):
        """Write through `write_with(writer)` (OutputPaths.write_with: atomic, names checked)."""
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "level": self.level,
                "state_keys": sorted(self.state), "history": self.history, "tracker": self.tracker_meta,
                "term_names": list(self.term_names)}
        arrays = {f"state_{k}": np.asarray(v) for k, v in self.state.items()}
        arrays.update({f"tracker_{k}": v for k, v in self.tracker_arrays.items() if v is not None})

        def writer(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)

        return write_with(writer)


class CheckpointPastBudget(UserError):
    """A checkpoint that has already spent more evaluations than the run's budget: resuming it would present
    an older, longer run as this one (batch catches it and redoes the job from the start)."""


def check_budget(path, checkpoint, recipe):
    """Refuse a checkpoint past `recipe`'s budget (the recipe at the checkpoint's level, with its budget)."""
    state = checkpoint.state
    if recipe.optimizer == "lbfgs" and recipe.lbfgs_call_overshoot:  # seed 003 counts its calls, not evaluations
        done, budget, unit, enough = (state["iteration"], recipe.restarts, "L-BFGS calls",
                                      state["iteration"] * recipe.lbfgs_maxfun)
    else:
        done, budget, unit, enough = state["evaluations"], recipe.iterations, "evaluations", state["evaluations"]
    if done > budget:
        raise CheckpointPastBudget(f"--resume {path}: the checkpoint has already run {done} {unit}, more than "
                                   f"this run's budget of {budget}; give --iterations {enough} or more to "
                                   "continue it, or run without --resume to start afresh")


def resume_kind(state, future=False):
    """How a run goes on from an optimiser state: exactly, or (inside an L-BFGS call) as a warm restart."""
    at = f"at evaluation {int(state['evaluations'])}"
    if int(state.get("warm", 0)):
        verb = "resumes" if future else "resumed"
        return (f"{verb} {at} as a warm restart of L-BFGS from the last iterate it accepted: scipy keeps its "
                "curvature memory inside a call, so that memory starts afresh")
    return f"{'resumes' if future else 'resumed'} exactly {at}"


def _refuse(path, what):
    return UserError(f"--resume {path}: not a readable legacy-nst checkpoint ({what})")


def load(path):
    """Read and validate a checkpoint file (UserError naming the problem otherwise)."""
    if not os.path.isfile(path):
        raise UserError(f"--resume {path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            if "meta" not in files:
                raise _refuse(path, "it has no meta record")
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in files if name != "meta"}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, KeyError) as exc:
        # never repeat numpy's advice to load with allow_pickle: a checkpoint never holds objects
        reason = "it holds Python objects" if "pickle" in str(exc) else f"unreadable ({type(exc).__name__})"
        raise _refuse(path, reason) from None
    except Exception as exc:  # zipfile and json raise many types for truncated or foreign files
        raise _refuse(path, f"unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _refuse(path, "it was not written by this version of legacy-nst")
    for key, kind in (("fingerprint", dict), ("level", int), ("state_keys", list), ("history", list),
                      ("tracker", dict), ("term_names", list)):
        if not isinstance(meta.get(key), kind):
            raise _refuse(path, f"its field {key!r} is missing or malformed")
    state = {}
    for key in meta["state_keys"]:
        if f"state_{key}" not in arrays:
            raise _refuse(path, f"the optimiser state {key!r} is missing")
        state[key] = arrays[f"state_{key}"]
    for key in ("iteration", "evaluations", "image"):
        if key not in state:
            raise _refuse(path, f"the optimiser state {key!r} is missing")
    named = [(f"the optimiser state {k!r}", v) for k, v in state.items()]
    named += [(f"the kept {k[len('tracker_'):].replace('_', ' ')}", v) for k, v in arrays.items()
              if k.startswith("tracker_")]
    for name, value in named:
        if value.dtype.kind not in "fiu":
            raise _refuse(path, f"{name} is not numeric")
        if not np.isfinite(value).all():
            raise _refuse(path, f"{name} holds NaN or infinite values (the run it came from had diverged)")
    image = state["image"]
    if image.ndim != 3 or image.shape[2] != 3:
        raise _refuse(path, f"its image has shape {image.shape}, not (H, W, 3)")
    state["iteration"], state["evaluations"] = int(state["iteration"]), int(state["evaluations"])
    tracker_arrays = {k[len("tracker_"):]: v for k, v in arrays.items() if k.startswith("tracker_")}
    for i in range(len(meta["tracker"].get("snapshots", []))):
        if f"snapshot_{i}" not in tracker_arrays:
            raise _refuse(path, f"snapshot {i} is missing")
    best = meta["tracker"].get("best_total")
    if not isinstance(best, (int, float)) or math.isnan(best):
        raise _refuse(path, "its best loss is missing or NaN")
    return Checkpoint(meta["fingerprint"], meta["level"], state, meta["history"], meta["tracker"],
                      tracker_arrays, tuple(meta["term_names"]))


NAMES = {"algorithm": "the recipe settings", "content": "the content image", "styles": "the style images",
         "blend": "the style blend weights", "init_image": "the init image", "weights": "the weights file",
         "seed": "the seed", "sizes": "the image sizes (--size / --scales)",
         "preserve_colors": "--preserve-colors", "style_scales": "--style-scale", "masks": "the style masks"}


def check_matches(path, checkpoint, current, shape):
    """Refuse a checkpoint made for other inputs or settings, or for another image shape."""
    saved = checkpoint.fingerprint
    differ = [key for key in current if saved.get(key) != current[key]]
    if "algorithm" in differ:
        fields = [k for k in current["algorithm"] if saved.get("algorithm", {}).get(k) != current["algorithm"][k]]
        differ[differ.index("algorithm")] = f"the recipe settings ({', '.join(fields)})"
    if differ:
        described = [NAMES.get(key, key) for key in differ]
        raise UserError(f"--resume {path}: made for a different run ({'; '.join(described)} differ); "
                        "resume with the same inputs, recipe and flags (only --iterations may grow)")
    if checkpoint.state["image"].shape[:2] != tuple(shape):
        raise UserError(f"--resume {path}: its image is {checkpoint.state['image'].shape[1]}×"
                        f"{checkpoint.state['image'].shape[0]} px but this run's is {shape[1]}×{shape[0]} px")
