"""The process pool: N worker processes, each importing TensorFlow once and running one job per message."""
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import time

from . import attempts
from .pools import INTERRUPT_GRACE, POLL, THREAD_VARIABLES, Died, environment
from ...runner import interrupts, loop

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def die_with(parent):
    """This process gets SIGKILL when its parent (the driver) dies, however it dies: a SIGKILLed driver
    left its workers computing and writing with parent 1 (issue 20.6). Linux only (prctl); elsewhere the
    worker notices its closed pipe when it next reads a job."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)


def worker_main(connection, parent=None):
    """A local worker process: TensorFlow imported once, then one job per message until told to stop."""
    if parent is not None:
        die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it sends SIGTERM

    def on_sigterm(signum, frame):
        raise loop.Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        cpu = time.process_time()
        startup = attempts.warm_up()
        startup_cpu = time.process_time() - cpu
        while True:
            job = connection.recv()
            if job is None:
                return
            with interrupts.scope() as held:  # a SIGTERM at the job's end waits until it is reported
                outcome = attempts.attempt(job)
                outcome.timings["startup"] = startup  # the import is the first job's overhead
                outcome.timings["cpu"] += startup_cpu
                startup = startup_cpu = 0.0
                connection.send(outcome)
            held.deliver()
    except (loop.Terminated, EOFError, BrokenPipeError):
        return


class ProcessPool:
    """N worker processes (spawned, so no TensorFlow state is inherited); a dead one is replaced."""

    def __init__(self, workers, threads, on_start=lambda pid: None):
        self.slots, self.threads, self.on_start = workers, threads, on_start
        self.context = multiprocessing.get_context("spawn")
        self.idle, self.busy = [], {}  # busy: process -> (connection, task)
        for _ in range(workers):
            self.idle.append(self._start())

    def _start(self):
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=worker_main, args=(theirs, os.getpid()), daemon=True)
        # Each worker's thread pools get its share of the cores, read once when the libraries load (before
        # any code of ours runs in the child): TensorFlow's intra-op pool, and OpenMP/OpenBLAS', which
        # otherwise spin 2 threads per worker: 12 jobs at 64 px, 2 workers on 2 cores, took 2.8 CPU s
        # per job without OMP_NUM_THREADS=1 and 2.1 with it (bench/batch.py; Ray sets it for its tasks).
        with environment(dict.fromkeys(THREAD_VARIABLES, str(self.threads))):
            process.start()  # spawn: the child gets the environment as it is now
        theirs.close()
        self.on_start(process.pid)
        return process, ours

    def submit(self, task):
        while self.idle and not self.idle[-1][0].is_alive():  # died while idle: its job was not lost
            process, connection = self.idle.pop()
            process.join()
            connection.close()
        process, connection = self.idle.pop() if self.idle else self._start()
        connection.send(task.job)
        self.busy[process] = (connection, task)

    def wait(self, timeout=POLL):
        waited = [connection for connection, _ in self.busy.values()] + [p.sentinel for p in self.busy]
        ready = multiprocessing.connection.wait(waited, timeout)
        finished = []
        for process in [p for p in self.busy if p.sentinel in ready or self.busy[p][0] in ready]:
            connection, task = self.busy.pop(process)
            try:
                outcome = connection.recv() if connection.poll() else None
            except (EOFError, OSError):
                outcome = None
            if outcome is None:  # it died holding the task
                process.join()
                connection.close()
                finished.append((task, Died(f"its worker process {process.pid} died "
                                             f"(exit code {process.exitcode})")))
            else:
                self.idle.append((process, connection))
                finished.append((task, outcome))
        return finished

    def interrupt(self):
        """SIGTERM every busy worker (each keeps its job's partial image and records); yields what they return."""
        for process in self.busy:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + INTERRUPT_GRACE
        while self.busy and time.monotonic() < deadline:
            yield from self.wait(timeout=1.0)

    def close(self):
        for process, connection in self.idle:
            try:
                connection.send(None)
            except OSError:
                pass
        for process, (connection, _) in self.busy.items():  # still working after an interrupt: stopped
            process.kill()
        for process, connection in self.idle + [(p, c) for p, (c, _) in self.busy.items()]:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
            connection.close()
        self.idle.clear()
        self.busy.clear()
