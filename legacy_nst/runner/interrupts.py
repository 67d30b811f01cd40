"""Ctrl-C and SIGTERM stop a run where it stands: never twice, never not at all, never a finished run.

The front ends turn both signals into exceptions (KeyboardInterrupt; runner.Terminated for SIGTERM) so that
a run can keep what it has. Such an exception lands wherever the main thread happens to be, and
`bench/interrupts.py` (SIGTERM to a batch worker at a random moment of its job) shows two ways that goes
wrong:

- After the optimisation is over. A signal that came while the result was being written reported the job
  "interrupted" with its result on disk and a partial image beside it (12 of 200 trials). Landing inside
  matplotlib while the loss plot was drawn, it left a half-drawn figure that made the partial-image plot
  fail: "failed: internal error" (1 of an earlier 330). Landing between the result and the worker's
  report, it ended the worker without the report.
- Inside a weakref callback (TensorFlow's graph keeps WeakKeyDictionaries): there the exception is printed
  as "Exception ignored" and dropped, so the run went on as if no signal had come (5 of 200).

So a run opens a `scope()`, which wraps the handlers. A signal is remembered as well as handled, and
`check()`, between evaluations, raises it again if its exception was dropped. Once the optimisation is over
the run calls `hold()`: from then on a signal is only recorded, the commit completes, and the signal waits
for the end of the outermost scope. Whoever opened that scope acts on it: the batch's worker once it has
reported the job, the inline batch once it has recorded it, or the run itself, which notes it in the Result.
"""
import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Scope:
    """SIGINT and SIGTERM within a run (only where Python handles them: an ignored or default signal is left
    as it is). `came` lists the signals held since `hold()`."""

    def __init__(self):
        self.came = []
        self._raised = []  # signals handed to their handler (whose exception may have been dropped)
        self._handlers = {}
        self._holding = False

    def _open(self):
        for signum in SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):
                self._handlers[signum] = handler
                signal.signal(signum, self._on_signal)

    def _close(self):
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers = {}

    def _on_signal(self, signum, frame):
        if self._holding:
            self.came.append(signum)
            return
        self._raised.append(signum)
        self._handlers[signum](signum, frame)

    def hold(self):
        self._holding = True

    def check(self):
        """Raise again a signal whose exception was dropped where it landed (the run is still going)."""
        if self._raised and not self._holding:
            self._handlers[self._raised[0]](self._raised[0], None)

    def deliver(self):
        """After the scope: hand the first held signal to its handler now (it raises, as it would have)."""
        if self.came:
            signal.raise_signal(self.came[0])


_opened = []  # the main thread's outermost open scope, if any


@contextlib.contextmanager
def scope():
    """Open a scope, or join the one already open: the outermost scope is the one a held signal waits
    for. Off the main thread (where no signal handler runs) a scope does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield Scope()
        return
    if _opened:
        yield _opened[0]
        return
    opened = Scope()
    _opened.append(opened)
    opened._open()
    try:
        yield opened
    finally:
        opened._close()
        _opened.pop()


def hold():
    """The run is committing: from now until the outermost scope ends SIGINT and SIGTERM are recorded."""
    if _opened and threading.current_thread() is threading.main_thread():
        _opened[0].hold()


def check():
    """Between evaluations: a signal whose exception was dropped is raised here."""
    if _opened and threading.current_thread() is threading.main_thread():
        _opened[0].check()
