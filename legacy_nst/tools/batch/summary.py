"""OUT/summary.json and OUT/summary.csv: every job of the batch, rewritten (atomically) after each one ends."""
import csv
import io
import json
from pathlib import Path

from ...atomic import write_text
from ...errors import WriteError

SUMMARY_COLUMNS = ("name", "status", "reason", "evaluations", "final_total", "seconds", "where", "attempts",
                   "resumed_from", "output")
SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"  # in OUT


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
    records = [o.record() for o in outcomes]
    _write_summary_file(out_dir / SUMMARY_JSON, json.dumps({"jobs": records}, indent=1, default=str))
    terms = list(dict.fromkeys(k for o in outcomes for k in o.final if k != "total"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS[:5] + tuple(f"final_{t}" for t in terms) + SUMMARY_COLUMNS[5:])
    for o in outcomes:
        writer.writerow([o.name, o.status, o.reason, o.evaluations, o.final.get("total", "")]
                        + [o.final.get(t, "") for t in terms]
                        + [f"{o.seconds:.2f}", o.where, o.attempts, o.resumed_from, o.output])
    _write_summary_file(out_dir / SUMMARY_CSV, buffer.getvalue())


def _write_summary_file(path, text):
    try:
        write_text(path, text)
    except OSError as exc:  # disk full, a quota: one line naming the file (exit 1), not a traceback
        raise WriteError(f"could not write {path}: {exc.strerror or exc}") from None
