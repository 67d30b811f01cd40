"""What the driver reports of each job: its JobOutcome (also the summary's record) and the Progress events."""
import dataclasses

STATUSES = ("done", "failed", "interrupted", "pending")


@dataclasses.dataclass
class JobOutcome:
    """What became of one job of a batch."""

    name: str
    status: str = "pending"  # done | failed | interrupted | pending (never started)
    reason: str = ""  # why it failed or stopped
    stopped: str = ""  # the Result's stop reason, when the run started
    evaluations: int = 0
    final: dict = dataclasses.field(default_factory=dict)  # the last history row (total, terms raw/weighted)
    seconds: float = 0.0  # wall seconds of all its attempts (this batch call), start-up included
    where: str = ""  # host:pid (and Ray node) of the last attempt
    attempts: int = 0
    resumed_from: int = 0  # evaluations its last attempt found in the checkpoint (0: started afresh)
    output: str = ""  # the result image's path
    files: dict = dataclasses.field(default_factory=dict)  # kind -> path written (Result.files)
    timings: dict = dataclasses.field(default_factory=dict)  # startup, prepare, build, optimise, finish, cpu (s)
    skipped: bool = False  # done by an earlier call with the same settings: not run again
    key: str = ""  # digest of the job's settings (what "the same job" means for skipping)
    result: object = dataclasses.field(default=None, repr=False)  # the Result (None when skipped)

    def record(self):
        """The JSON-able summary entry (no arrays). Shallow: asdict would deep-copy the Result's images, and
        the summary of a large batch is written often."""
        return {name: getattr(self, name) for name in RECORDED}


RECORDED = tuple(f.name for f in dataclasses.fields(JobOutcome) if f.name != "result")  # a summary's keys


@dataclasses.dataclass(frozen=True)
class Progress:
    """Passed to on_progress whenever a job starts or ends."""

    total: int
    done: int
    failed: int
    running: int
    outcome: JobOutcome | None = None  # the job that just ended (None: one started)
    started: str = ""  # the job that just started
