"""What makes two runs the same run: one definition for checkpoints, batch skipping and figure cells.

Two runs are the same when they read the same input bytes (the content, every style with its blend weight,
scale and mask, the init image, the weights, the images the network is normalised on: by digest, never by
path, so a file replaced at the same path is a different input) through the same algorithm (every field of
the resolved recipe), with the same seed, colour mode and sizes. The budget (evaluations per level) is kept
apart: a checkpoint may continue into a larger budget, while a finished result is only the result of its
own budget. Where a run's outputs go, how often it prints, the device and tiling (exact) are not part of it.

`of_job` describes a `Job` from its files (batch skipping, figure cells); `of_arrays` describes a run from
the arrays it loaded (checkpoints, which also hold the weights' digest once they are read). Both go through
`_described`, so the fields are written once. No TensorFlow here.
"""
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from .normalisation import image_files
from ..errors import UserError

# {(real path, inode, size, mtime ns): sha256}: a file is read once per process until it changes
_FILE_DIGESTS = {}


def digest(*arrays):
    """sha256 of arrays' shapes, dtypes and bytes (the inputs as the run saw them, after loading)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_digest(path):
    """sha256 of a file's bytes; None for a file that cannot be read (the run itself then names it)."""
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
        key = (real, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in _FILE_DIGESTS:
            h = hashlib.sha256()
            with open(real, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            _FILE_DIGESTS[key] = h.hexdigest()
        return _FILE_DIGESTS[key]
    except OSError:
        return None


def input_digest(value):
    """An input as a digest: an array's bytes, a file's bytes, or None for none."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return digest(value)
    return file_digest(str(value))


@dataclass(frozen=True)
class Identity:
    same: dict  # everything two runs must share (JSON values)
    budget: list  # evaluations per level

    def key(self):
        """16 hex digits of the whole identity, budget included: equal keys, the same finished result."""
        text = json.dumps({"same": self.same, "budget": self.budget}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def record(self):
        return {"same": self.same, "budget": self.budget}


INPUTS = ("content", "styles", "masks", "init_image", "weights")  # file contents; the rest: settings


def differences(saved, current):
    """The fields where two identity records ({"same", "budget"}) differ, an algorithm difference named by
    its recipe fields ("style_weight")."""
    differ = []
    a, b = saved.get("same") or {}, current.get("same") or {}
    for name in sorted(set(a) | set(b)):
        if a.get(name) == b.get(name):
            continue
        if name == "algorithm" and isinstance(a.get(name), dict) and isinstance(b.get(name), dict):
            differ += [k for k in sorted(set(a[name]) | set(b[name])) if a[name].get(k) != b[name].get(k)]
        else:
            differ.append(name)
    if saved.get("budget") != current.get("budget"):
        differ.append("iterations")
    return differ


def _described(recipe, content, styles, blend, style_scales, masks, init_image, seed, sizes, preserve_colors):
    """The `same` dict from digests already taken; every key is one field a user can change."""
    algorithm = {k: v for k, v in recipe.algorithm().items() if k not in ("iterations", "size")}
    return json.loads(json.dumps({
        "algorithm": algorithm, "content": content, "styles": list(styles), "blend": [float(w) for w in blend],
        "style_scales": [float(s) for s in style_scales], "masks": list(masks), "init_image": init_image,
        "seed": int(seed), "sizes": list(sizes), "preserve_colors": preserve_colors}))


def of_arrays(recipe, content, styles, blend, init_image, seed, sizes, preserve_colors="none", style_scales=(),
              masks=()):
    """The `same` dict of a run from the arrays it loaded (`masks`: their digests, none without masks). The
    caller adds "weights", the digest of the parameters it optimises through once they are read: that
    digest also covers the normalisation set, which changes the parameters."""
    return _described(recipe, digest(content), [digest(s) for s in styles], blend,
                      list(style_scales) or [1.0] * len(styles), masks,
                      None if init_image is None else digest(init_image), seed, sizes, preserve_colors)


def normalise_digests(paths):
    """The digests of the images the network is normalised on, sorted (the set matters, not the names)."""
    if not paths:
        return []
    try:
        files = image_files(paths)
    except UserError:  # the run names the problem; here the paths stand for the set
        return sorted(map(str, paths))
    return sorted(file_digest(f) or str(f) for f in files)


def of_job(job):
    """The identity of a `Job` from its files, without running it (UserError for a bad recipe or schedule).
    An unreadable input digests as None and a missing normalisation set as its paths: the run names them."""
    recipe = job.resolved_recipe()
    levels = job.levels(recipe)
    styles = job.styles
    if job.content is None and not styles:  # the demo pair: drawn from the sizes alone
        content, style_digests, blend = "demo pair", ["demo pair"], [1.0]
    else:
        content, style_digests = input_digest(job.content), [input_digest(s.image) for s in styles]
        blend = [s.weight for s in styles]
    masked = any(s.mask is not None for s in styles)
    same = _described(recipe, content, style_digests, blend, [s.scale for s in styles] or [1.0],
                      [input_digest(s.mask) for s in styles] if masked else [], input_digest(job.init_image),
                      job.seed, [level.size for level in levels], job.preserve_colors)
    same["weights"] = None if job.weights is None else input_digest(job.weights)  # None: the canonical file
    same["normalise_on"] = normalise_digests(job.normalise_on)
    return Identity(same, [level.iterations for level in levels])
