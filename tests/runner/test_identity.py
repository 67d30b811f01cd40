"""One identity of a run (identity.py): every field that changes a run's numbers changes it, nothing else
does, and the three users of it (checkpoints, batch skipping, figure cells) redo or refuse, never reuse."""
import dataclasses
import shutil

import numpy as np
import pytest
from PIL import Image
from support import write_pair

from legacy_nst import Job, Output, Style, UserError, recipes
from legacy_nst.runner import checkpoint, identity
from legacy_nst.tools import batch


@pytest.fixture
def files(tmp_path):
    content, style = write_pair(tmp_path / "in", shape=(24, 32))
    mask = tmp_path / "in" / "mask.png"
    Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))).save(mask)
    other = tmp_path / "in" / "other.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(other)
    norm = tmp_path / "norm"
    norm.mkdir()
    shutil.copy(content, norm / "a.png")
    weights = tmp_path / "w.npz"
    np.savez(weights, a=np.zeros(3))
    return {"content": content, "style": style, "mask": mask, "other": other, "norm": norm, "weights": weights}


def base_job(f, **changes):
    job = Job(content=str(f["content"]), styles=(Style(str(f["style"])),), recipe="preview",
              overrides={"size": 32, "iterations": 4}, weights=str(f["weights"]), name="a")
    return dataclasses.replace(job, **changes)


def replace_bytes(path, value):
    """The same path with other pixels (a file replaced in place)."""
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(path)


# Each entry: a change a user can make; every one must give another identity.
CHANGES = {
    "content bytes at the same path": lambda f, job: replace_bytes(f["content"], 10) or job,
    "style bytes at the same path": lambda f, job: replace_bytes(f["style"], 20) or job,
    "another content file": lambda f, job: dataclasses.replace(job, content=str(f["other"])),
    "style blend weight": lambda f, job: dataclasses.replace(
        job, styles=(Style(str(f["style"])), Style(str(f["other"]), weight=2.0))),
    "style scale": lambda f, job: dataclasses.replace(job, styles=(Style(str(f["style"]), scale=0.5),)),
    "style mask": lambda f, job: dataclasses.replace(job, styles=(Style(str(f["style"]), mask=str(f["mask"])),)),
    "init image": lambda f, job: dataclasses.replace(job, init_image=str(f["other"])),
    "seed": lambda f, job: dataclasses.replace(job, seed=3),
    "colour mode": lambda f, job: dataclasses.replace(job, preserve_colors="luminance"),
    "normalisation set": lambda f, job: dataclasses.replace(job, normalise_on=(str(f["norm"]),)),
    "normalisation image bytes": lambda f, job: replace_bytes(f["norm"] / "a.png", 30) or job,
    "weights bytes": lambda f, job: np.savez(f["weights"], a=np.ones(3)) or job,
    "an algorithm field": lambda f, job: dataclasses.replace(job, overrides={**job.overrides, "style_weight": 7.0}),
    "corrected": lambda f, job: dataclasses.replace(job, recipe="keras-lbfgs", corrected=True),
    "size": lambda f, job: dataclasses.replace(job, overrides={**job.overrides, "size": 48}),
    "budget": lambda f, job: dataclasses.replace(job, overrides={**job.overrides, "iterations": 5}),
    "schedule": lambda f, job: dataclasses.replace(job, schedule=(16, 32)),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_field_changes_the_identity(change, files):
    start = base_job(files, normalise_on=(str(files["norm"]),)) if change == "normalisation image bytes" \
        else base_job(files)
    if change == "corrected":
        start = dataclasses.replace(start, recipe="keras-lbfgs")
    before = identity.of_job(start)
    after = identity.of_job(CHANGES[change](files, start))
    assert after.key() != before.key()
    assert identity.differences(before.record(), after.record())


def test_budget_is_kept_apart_from_the_rest(files):
    """A larger budget may continue a checkpoint: the `same` part is equal, only the budget differs."""
    small, large = base_job(files), base_job(files, overrides={"size": 32, "iterations": 9})
    assert identity.of_job(small).same == identity.of_job(large).same
    assert identity.of_job(small).budget == [4] and identity.of_job(large).budget == [9]
    assert identity.differences(identity.of_job(small).record(), identity.of_job(large).record()) == ["iterations"]


def test_what_does_not_change_the_numbers_leaves_it_alone(files, tmp_path):
    """Paths, outputs, device and tiling (exact) are not the run; a copy of the content is the same content."""
    job = base_job(files)
    copy = tmp_path / "copy.png"
    shutil.copy(files["content"], copy)
    for same in (dataclasses.replace(job, content=str(copy)), dataclasses.replace(job, name="b"),
                 dataclasses.replace(job, output=Output("x.png", print_every=3, save_every=2)),
                 dataclasses.replace(job, device="cpu"), dataclasses.replace(job, tile=64)):
        assert identity.of_job(same).key() == identity.of_job(job).key()


def test_a_checkpoint_fingerprint_names_each_changed_field():
    """checkpoint.fingerprint goes through identity.of_arrays: colour mode, scales, masks, seed, sizes."""
    recipe = recipes.get("preview")
    content, style = np.zeros((8, 8, 3), np.float32), np.ones((8, 8, 3), np.float32)
    extra = {"preserve_colors": "none", "style_scales": [1.0], "masks": []}
    saved = checkpoint.fingerprint(recipe, content, [style], [1.0], None, 0, [32], extra)
    ck = checkpoint.Checkpoint(saved, 0, {"image": np.zeros((8, 8, 3))}, [], {}, {}, ())
    for changed, message in (
            ({"extra": {**extra, "preserve_colors": "post"}}, "--preserve-colors"),
            ({"extra": {**extra, "style_scales": [0.5]}}, "--style-scale"),
            ({"extra": {**extra, "masks": [identity.digest(np.ones((8, 8)))]}}, "the style masks"),
            ({"content": content + 1}, "the content image"), ({"seed": 1}, "the seed"),
            ({"sizes": [48]}, "the image sizes")):
        args = {"content": content, "seed": 0, "sizes": [32], "extra": extra, **changed}
        current = checkpoint.fingerprint(recipe, args["content"], [style], [1.0], None, args["seed"], args["sizes"],
                                         args["extra"])
        with pytest.raises(UserError, match=message):
            checkpoint.check_matches("x.checkpoint.npz", ck, current, (8, 8))
    checkpoint.check_matches("x.checkpoint.npz", ck, saved, (8, 8))  # the same run resumes


def fake_attempt(attempted):
    """The batch runner's one attempt, without TensorFlow: records the job and writes its result file."""
    def attempt(job, where=""):
        attempted.append(job)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(job.output.path)
        return batch.JobOutcome(job.name, status="done", output=job.output.path, evaluations=4)
    return attempt


@pytest.mark.parametrize("change", ["colour mode", "style scale", "style mask", "normalisation set",
                                    "content bytes at the same path", "budget"])
def test_run_jobs_redoes_a_job_whose_identity_changed(change, files, tmp_path, monkeypatch):
    attempted = []
    monkeypatch.setattr(batch.attempts, "attempt", fake_attempt(attempted))
    out = tmp_path / "out"
    job = base_job(files)
    batch.run_jobs([job], out)
    assert [j.name for j in attempted] == ["a"]
    assert batch.run_jobs([job], out)[0].skipped  # unchanged: skipped
    assert len(attempted) == 1
    [outcome] = batch.run_jobs([CHANGES[change](files, job)], out)
    assert not outcome.skipped and len(attempted) == 2


def test_every_algorithm_field_is_part_of_the_identity(files):
    """The recipe's fields enter whole (the budget and size apart, as budget and sizes): a field added to
    Recipe later is part of the identity without an edit here."""
    job = base_job(files)
    same = identity.of_job(job).same
    assert set(same["algorithm"]) == set(job.resolved_recipe().algorithm()) - {"iterations", "size"}
    assert same["sizes"] == [32] and identity.of_job(job).budget == [4]


def test_nothing_outside_the_engine_loads_tensorflow():
    """Every module outside legacy_nst.engine imports without TensorFlow (the engine is the one door): batch
    skipping and figure resumes compute identities in the driver, `--help` and argument checks answer at once."""
    import pkgutil
    import subprocess
    import sys

    import legacy_nst

    modules = [m.name for m in pkgutil.walk_packages(legacy_nst.__path__, "legacy_nst.")
               if not m.name.startswith("legacy_nst.engine.")]
    assert {"legacy_nst.runner.loop", "legacy_nst.tools.batch", "legacy_nst.ui.cli", "legacy_nst.engine"} <= set(modules)
    code = ("import sys, legacy_nst, legacy_nst.runner, legacy_nst.tools; import " + ", ".join(modules)
            + "; print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]