"""OUT/summary.json and OUT/summary.csv: every job of the batch, rewritten (atomically) after each one ends."""
import csv
import io
import json
import time
from pathlib import Path

from ...atomic import write_text
from ...errors import WriteError

SUMMARY_COLUMNS = ("name", "status", "reason", "evaluations", "final_total", "seconds", "where", "attempts",
                   "resumed_from", "output")
SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"  # in OUT
_ENCODE = json.JSONEncoder(default=str).encode


def earlier_records(out_dir):
    """{name: record} of the summary an earlier call left in out_dir."""
    try:
        with open(Path(out_dir) / SUMMARY_JSON, encoding="utf-8") as f:
            return {r["name"]: r for r in json.load(f)["jobs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_summary(out_dir, outcomes):
    """OUT/summary.json (every field) and OUT/summary.csv (one row per job, final losses as columns)."""
    out_dir = Path(out_dir)
    # one job a line: json's indenting encoder is pure Python, 0.7 s for 20 000 jobs; a line each, 0.1 s
    # (one encoder for them all: json.dumps builds one per call)
    lines = ",\n".join(map(_ENCODE, (o.record() for o in outcomes)))
    _write_summary_file(out_dir / SUMMARY_JSON, f'{{"jobs": [\n{lines}\n]}}\n')
    terms = list(dict.fromkeys(k for o in outcomes for k in o.final if k != "total"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS[:5] + tuple(f"final_{t}" for t in terms) + SUMMARY_COLUMNS[5:])
    for o in outcomes:
        writer.writerow([o.name, o.status, o.reason, o.evaluations, o.final.get("total", "")]
                        + [o.final.get(t, "") for t in terms]
                        + [f"{o.seconds:.2f}", o.where, o.attempts, o.resumed_from, o.output])
    _write_summary_file(out_dir / SUMMARY_CSV, buffer.getvalue())


class SummaryWriter:
    """write_summary after each job that ends, as long as a write is quick (under QUICK seconds: the summary
    is then always current); a slow one (a summary of 257 000 jobs takes about a second) waits until SHARE⁻¹
    times its own duration has passed, so that writing it never takes more than SHARE of the batch's time.
    `flush` writes what is still unwritten (the end of the batch, or its interruption)."""

    QUICK, SHARE = 0.05, 0.1

    def __init__(self, out_dir):
        self.out_dir, self.took, self.ended, self.unwritten = out_dir, 0.0, 0.0, False

    def write(self, outcomes):
        start = time.monotonic()
        write_summary(self.out_dir, outcomes)
        self.ended = time.monotonic()
        self.took, self.unwritten = self.ended - start, False

    def after_job(self, outcomes):
        if self.took >= self.QUICK and time.monotonic() - self.ended < self.took / self.SHARE:
            self.unwritten = True
        else:
            self.write(outcomes)

    def flush(self, outcomes):
        if self.unwritten:
            self.write(outcomes)


def _write_summary_file(path, text):
    try:
        write_text(path, text)
    except OSError as exc:  # disk full, a quota: one line naming the file (exit 1), not a traceback
        raise WriteError(f"could not write {path}: {exc.strerror or exc}") from None
