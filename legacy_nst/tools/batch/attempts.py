"""One attempt at one job, in whichever process runs it (the driver, a worker process, a Ray task): it
continues the job's own checkpoint when there is one, and never raises for a problem of the job's. Every
pool calls it as `attempts.attempt`, looked up at each call, so that a test's stand-in is the one they run."""
import contextlib
import dataclasses
import glob
import os
import time

from .outcomes import JobOutcome
from ... import engine
from ...errors import UserError
from ...liveness import HOST
from ...runner import checkpoint as checkpoints
from ...runner import interrupts, loop
from ...runner.events import LevelFinished, LevelStarted, Saved
from ...runner.outputs import OutputPaths

_TF_IMPORT_SECONDS = None


def warm_up():
    """Import TensorFlow once per process; returns the seconds it took now (0 when already imported)."""
    global _TF_IMPORT_SECONDS
    if _TF_IMPORT_SECONDS is not None:
        return 0.0
    start = time.perf_counter()
    engine.tf  # noqa: B018  (imports TensorFlow)

    _TF_IMPORT_SECONDS = time.perf_counter() - start
    return _TF_IMPORT_SECONDS


def past_budget(job, path):
    """Whether the checkpoint at `path` went further than the job's budget (a rerun with fewer evaluations):
    continuing it would present the longer run's image as this one's (issue 20.1)."""
    try:
        saved = checkpoints.load(path)
    except UserError:
        return False  # unreadable: the run itself refuses it, naming the file
    levels = job.levels(job.resolved_recipe())
    return saved.level >= len(levels) or saved.state["evaluations"] > levels[saved.level].iterations


def start_afresh(paths):
    """Remove what an earlier, longer run of this batch-made output left (its checkpoint, numbered
    snapshots and partial image), so that nothing of it is presented as the new run's."""
    for path in [paths.checkpoint, paths.partial] + [p for pattern in paths._series() for p in glob.glob(pattern)]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def attempt(job, where="", on_saved=None):
    """Run one job once, continuing its own checkpoint if one exists; never raises for a job's problem.
    on_saved(kind, path) is called after each file the run writes."""
    start, cpu = time.perf_counter(), time.process_time()
    timings = {"startup": warm_up()}
    paths = OutputPaths(job.output.path)
    resumed = os.path.isfile(paths.checkpoint)
    if resumed and past_budget(job, paths.checkpoint):
        if job.output.overwrite:  # a folder of this batch's own: the longer run's files go
            start_afresh(paths)
        resumed = False
    if resumed:
        job = dataclasses.replace(job, resume=paths.checkpoint)
    outcome = JobOutcome(job.name, output=paths.result, where=where or f"{HOST}:{os.getpid()}",
                      timings=timings)
    marks = {"level_start": None, "level_end": time.perf_counter()}

    def on_event(event):
        now = time.perf_counter()
        if isinstance(event, LevelStarted):
            timings["build"] = timings.get("build", 0.0) + now - marks["level_end"]
            marks["level_start"] = now
        elif isinstance(event, LevelFinished):
            timings["optimise"] = timings.get("optimise", 0.0) + now - marks["level_start"]
            marks["level_end"] = now
        elif isinstance(event, Saved) and on_saved is not None:
            on_saved(event.kind, event.path)

    try:
        prepared = time.perf_counter()
        plan = loop.prepare(job)
        timings["prepare"] = time.perf_counter() - prepared
        if plan.resume is not None:
            outcome.resumed_from = int(plan.resume.state["evaluations"])
        marks["level_end"] = time.perf_counter()
        result = loop.execute(plan, on_event)
    except UserError as exc:
        hint = (f" (its checkpoint {paths.checkpoint} is from other settings: delete it, or use another "
                "output folder)") if resumed and "--resume" in str(exc) else ""
        outcome.status, outcome.reason = "failed", f"{exc}{hint}"
    except (KeyboardInterrupt, loop.Terminated):  # before the run loop, which handles them itself
        outcome.status, outcome.reason = "interrupted", "interrupted before the optimisation started"
    except Exception as exc:  # a bug: recorded for this job, the batch goes on
        outcome.status, outcome.reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
    else:
        timings["finish"] = time.perf_counter() - marks["level_end"]
        outcome.result, outcome.stopped, outcome.files = result, result.stopped, dict(result.files)
        outcome.evaluations = int(result.history[-1]["evaluations"]) if result.history else 0
        outcome.final = {k: v for k, v in (result.history[-1] if result.history else {}).items()
                         if k not in ("size", "iteration", "evaluations", "seconds")}
        outcome.status = {"finished": "done", "interrupted": "interrupted", "terminated": "interrupted"}.get(
            result.stopped, "failed")
        outcome.reason = result.message
    interrupts.hold()  # the outcome is decided (a finished run held signals already): it must be reported
    outcome.seconds = time.perf_counter() - start
    timings["cpu"] = time.process_time() - cpu  # this process's CPU seconds (all its threads): load-proof
    return outcome
