"""The batch's jobs made ready before anything runs: each job's output path and checkpoint interval, its
key (what "the same job" means for skipping a done one), and its names checked against the file system."""
import dataclasses
import math
import os

from .lock import LOCK_NAME
from .summary import SUMMARY_CSV, SUMMARY_JSON
from ...errors import UserError
from ...runner import identity
from ...runner.outputs import OutputPaths

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
    settled = job.output.settled(recipe.name)
    if job.output.save_every is None and not settled.save_every and not settled.save_restarts:
        budget = sum(level.iterations for level in job.levels(recipe))
        changes["save_every"] = max(1, math.ceil(budget / CHECKPOINTS_PER_JOB))
    output = dataclasses.replace(job.output, **changes) if changes else job.output
    return dataclasses.replace(job, name=name, output=output, resume=None, threads=job.threads or threads)


def _existing(directory):
    """`directory` (absolute), or its nearest ancestor that exists (where a job's folder will be made)."""
    while not os.path.isdir(directory) and directory != os.path.dirname(directory):
        directory = os.path.dirname(directory)
    return directory


def _name_max(directory):
    """NAME_MAX of the file system an existing `directory` is on."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _longest_name(job):
    """The longest file name a job's outputs can have (its numbered files at their largest numbers)."""
    paths = OutputPaths(job.output.path)
    levels = job.levels(job.resolved_recipe())
    largest = max([level.iterations for level in levels] + [level.size or 0 for level in levels])
    names = [paths.result, paths.log, paths.plot, paths.settings, paths.grid, paths.checkpoint, paths.partial,
             paths.lock, paths.snapshot(largest), paths.restart(largest), paths.scale(largest)]
    return max(map(os.path.basename, names), key=lambda name: len(name.encode()))


def check_names(jobs, out_dir):
    """Every job's outputs can be written: unique names, none the batch's own files, none too long."""
    seen, limits = set(), {}
    reserved = {name.casefold() for name in BATCH_FILES}
    for job in jobs:
        shown = job.name if len(job.name) <= 60 else f"{job.name[:40]}... ({len(job.name)} characters)"
        if job.name in seen:
            raise UserError(f"two jobs are named {job.name!r}; job names must be unique (they name the outputs)")
        seen.add(job.name)
        if job.name.casefold() in reserved:
            raise UserError(f"job {job.name!r}: the name is one of the batch's own files in --out "
                            f"({', '.join(BATCH_FILES)}); rename the job")
        longest = _longest_name(job)
        folder = _existing(os.path.dirname(os.path.abspath(job.output.path)))
        limit = limits[folder] if folder in limits else limits.setdefault(folder, _name_max(folder))
        if len(longest.encode()) > limit:
            excess = len(longest.encode()) - limit
            raise UserError(f"job {shown}: the name is too long: its file {longest[:40]}... would be "
                            f"{len(longest.encode())} bytes, the most this file system allows is {limit}; "
                            f"shorten the name by at least {excess} characters")
