"""The batch's jobs made ready before anything runs: each job's output path and checkpoint interval, its
key (what "the same job" means for skipping a done one), and its names checked against the file system."""
import dataclasses
import functools
import math
import os

from .lock import LOCK_NAME
from .summary import SUMMARY_CSV, SUMMARY_JSON
from ...errors import UserError
from ...runner import identity
from ...runner.outputs import OutputPaths, name_max

CHECKPOINTS_PER_JOB = 4  # save_every = budget / this, for jobs whose recipe source saves nothing
BATCH_FILES = (SUMMARY_JSON, SUMMARY_CSV, LOCK_NAME)  # OUT's own files: no job may be named so


def job_key(job):
    """Digest of everything that decides a job's outputs (identity.of_job, budget included): a done job
    with the same key is not run again."""
    return identity.of_job(job).key()


def with_output(job, index, out_dir, threads=None):
    """The job as the batch runs it: its output path (kept if it has one), a checkpoint interval, and
    `threads` unless it names its own."""
    name = job.name or f"job-{index + 1}"
    changes = {}
    if job.output.path is None:
        changes.update(path=os.path.join(out_dir, name, f"{name}.png"), overwrite=True)
    recipe = job.resolved_recipe()
    if (job.output.save_every is None and not job.output.setting("save_every", recipe.name)
            and not job.output.setting("save_restarts", recipe.name)):
        budget = sum(level.iterations for level in job.levels(recipe))
        changes["save_every"] = max(1, math.ceil(budget / CHECKPOINTS_PER_JOB))
    output = dataclasses.replace(job.output, **changes) if changes else job.output
    return dataclasses.replace(job, name=name, output=output, resume=None, threads=job.threads or threads)


STEM = "\0"  # stands for a job's file stem in _affixes (no file name can hold it)


@functools.lru_cache(maxsize=1024)
def _affixes(ext, levels, largest):
    """(before, after) the stem in the longest file name a job's outputs can have, for a result named STEM
    + ext with `levels` levels, every numbered kind at `largest` (its largest budget or size: a bound on
    each). A batch's jobs share a few of these, so each is worked out once, not per job (7.8 s of a
    100 000-job batch's start when each job built its OutputPaths). Temporary names are left out: they
    carry at most atomic.STEM_BYTES of the stem, so they are never the longest at a stem that matters."""
    longest = OutputPaths(STEM + ext, levels).longest_name(
        dict.fromkeys(("snapshot", "restart", "scale"), largest), temporaries=False)
    before, _, after = longest.partition(STEM)
    return before, after


def _longest_name(job):
    """The longest file name a job's outputs can have (its numbered files at their largest numbers)."""
    stem, ext = os.path.splitext(os.path.basename(job.output.path))
    levels = job.levels(job.resolved_recipe())
    largest = max([level.iterations for level in levels] + [level.size or 0 for level in levels])
    before, after = _affixes(ext, len(levels), largest)
    return before + stem + after


def check_names(jobs, out_dir):
    """Every job's outputs can be written: unique names, none the batch's own files, none too long."""
    seen, limits, existing = set(), {}, {}
    reserved = {name.casefold() for name in BATCH_FILES}

    def nearest_existing(directory):
        """`directory` (absolute), or its nearest ancestor that exists (where the job's folder will be
        made); one lookup per folder, as a batch's jobs share their parents."""
        if directory not in existing:
            parent = os.path.dirname(directory)
            existing[directory] = (directory if parent == directory or os.path.isdir(directory)
                                   else nearest_existing(parent))
        return existing[directory]

    for job in jobs:
        shown = job.name if len(job.name) <= 60 else f"{job.name[:40]}... ({len(job.name)} characters)"
        if job.name in seen:
            raise UserError(f"two jobs are named {job.name!r}; job names must be unique (they name the outputs)")
        seen.add(job.name)
        if job.name.casefold() in reserved:
            raise UserError(f"job {job.name!r}: the name is one of the batch's own files in --out "
                            f"({', '.join(BATCH_FILES)}); rename the job")
        longest = _longest_name(job)
        folder = nearest_existing(os.path.dirname(os.path.abspath(job.output.path)))
        limit = limits[folder] if folder in limits else limits.setdefault(folder, name_max(folder))
        if len(longest.encode()) > limit:
            excess = len(longest.encode()) - limit
            raise UserError(f"job {shown}: the name is too long: its file {longest[:40]}... would be "
                            f"{len(longest.encode())} bytes, the most this file system allows is {limit}; "
                            f"shorten the name by at least {excess} characters")
