"""The inline pool: the jobs one by one in the driver's own process."""
import collections

from . import attempts
from ...runner import interrupts


class InlinePool:
    """This process, one job at a time (workers=1): no start-up beyond this process's own."""

    slots = 1

    def __init__(self):
        self.queue = collections.deque()
        self.stopped = []  # the job Ctrl-C cut, reported by interrupt()

    def submit(self, task):
        self.queue.append(task)

    def wait(self):
        task = self.queue.popleft()
        with interrupts.scope() as held:
            outcome = attempts.attempt(task.job)
        if outcome.status == "interrupted" or held.came:  # Ctrl-C reached this process: stop the batch
            self.stopped = [(task, outcome)]
            held.deliver()  # one that came as the job finished goes to the handler (SIGTERM: exit 143)
            raise KeyboardInterrupt
        return [(task, outcome)]

    def interrupt(self):
        yield from self.stopped

    def close(self):
        pass
