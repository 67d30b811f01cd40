"""A run's progress on a console: a tqdm bar on a terminal, plain periodic lines anywhere else (a log
file, CI, nohup), and the loss every `print_every` evaluations, weighted terms labelled as such."""
import sys
import time

from tqdm import tqdm

from ..runner.events import Evaluation, LevelFinished, LevelStarted, Notice, Saved


def loss_line(event, budget):
    weighted = " + ".join(f"{name} {value:.4g}" for name, value in event.weighted.items())
    raw = ", ".join(f"{name} {value:.4g}" for name, value in event.terms.items())
    return (f"evaluation {event.evaluations}/{budget}: total {event.total:.4g} = {weighted} "
            f"(weighted); raw terms: {raw}")


class Console:
    """on_event for run(): what a person at a terminal (or reading a log) wants to see."""

    def __init__(self, print_every=10, quiet=False, stream=None, interval=30.0):
        self.print_every, self.quiet, self.interval = print_every, quiet, interval
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.bar = None
        self.budget = 0
        self._last_line = 0.0

    def say(self, text):
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, event):
        if isinstance(event, LevelStarted):
            self.budget = event.iterations
            if event.levels > 1:
                self.say(f"level {event.level + 1}/{event.levels}: {event.shape[1]}×{event.shape[0]} px, "
                         f"{event.iterations} evaluations")
            if event.resumed:
                self.say(event.resumed)
            if event.tile is not None:
                self.say(f"{event.shape[1]}×{event.shape[0]} px in {event.tile} px tiles, exact "
                         f"(tiling.py; {event.tiled_because})")
            if self.interactive and not self.quiet:
                self.bar = tqdm(total=event.iterations, unit="eval", dynamic_ncols=True, file=self.stream)
            self._last_line = time.monotonic()
        elif isinstance(event, Evaluation):
            self._evaluation(event)
        elif isinstance(event, LevelFinished):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        elif isinstance(event, Notice):  # said even with --quiet: the input was changed on the way in
            print(f"note: {event.text}", file=self.stream, flush=True)
        elif isinstance(event, Saved) and event.kind in ("scale", "snapshot", "checkpoint"):
            self.say(f"saved {event.path}")

    def _evaluation(self, event):
        if self.bar is not None:
            if event.evaluations > self.bar.total:  # seed 003's L-BFGS calls run past maxfun (lbfgs_call_overshoot)
                self.bar.total = event.evaluations
            self.bar.update(event.evaluations - self.bar.n)
            self.bar.set_postfix_str(f"total {event.total:.4g}", refresh=False)
        due = self.print_every and event.evaluations % self.print_every == 0
        quiet_for_long = not self.interactive and time.monotonic() - self._last_line > self.interval
        if due or quiet_for_long or event.evaluations == 1:
            self._last_line = time.monotonic()
            self.say(loss_line(event, self.budget))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
