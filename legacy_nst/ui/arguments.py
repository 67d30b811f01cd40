"""What the command line and its subcommands share: the program's name, its exit codes, and the argparse
types of its values (each names the value and the rule it broke)."""
import argparse
import math

from ..runner.job import parse_schedule

PROG = "legacy-nst"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


def _whole(minimum, rule):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be {rule}")
        return value
    return parse


positive_int = _whole(1, "at least 1")
count = _whole(0, "0 (never) or positive")


def finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def schedule(text):
    """--scales: the schedule syntax of runner.job.parse_schedule, as an argparse type."""
    try:
        return parse_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def grid(text):
    try:
        rows, cols = (int(t) for t in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROWS,COLS like 2,5") from None
    if min(rows, cols) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: rows and columns must be at least 1")
    return rows, cols
