"""OUT/.batch.lock: one batch writes an --out at a time."""
import contextlib
import json
import os
import time
from pathlib import Path

from ...atomic import write_text
from ...errors import UserError, WriteError
from ...liveness import HOST, boot_id, may_run

LOCK_NAME = ".batch.lock"  # OUT/.batch.lock: the batch writing OUT (host, boot id, pid, its workers' pids)
WORKERS_GONE_WAIT = 10.0  # s a new batch waits for a killed batch's workers to die (they get SIGKILL at once)


class BatchLock:
    """OUT/.batch.lock: one batch writes an --out at a time. It records the driver's host, boot id and pid
    and its workers' pids, so a later batch can tell a live batch (refused) from a killed one (taken over,
    once the killed one's workers are gone: two batches on one --out marked each other's finished jobs
    failed, issue 20.6)."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / LOCK_NAME
        self.record = {"host": HOST, "boot_id": boot_id(), "pid": os.getpid(), "workers": []}
        self.held = False

    def acquire(self):
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over(self._read())
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(json.dumps(self.record))
            except OSError as exc:  # a full disk: the lock is the batch's first write
                with contextlib.suppress(OSError):
                    os.remove(self.path)
                raise WriteError(f"could not write {self.path}: {exc.strerror or exc}") from None
            self.held = True
            return
        raise UserError(f"{self.path}: could not take the batch lock; remove it if no batch writes there")

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                record = json.load(f)
            return record if isinstance(record, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # torn by a crash mid-write: nobody holds it

    def _take_over(self, other):
        """Remove the lock of a batch that is gone; UserError if it may still be running."""
        if other is None:
            return  # released meanwhile
        if other and other.get("host") != HOST:
            raise UserError(f"--out {self.path.parent}: a batch on host {other.get('host')} (process "
                            f"{other.get('pid')}) is writing there; wait for it, or if it is gone remove {self.path}")
        boot = other.get("boot_id")  # its pids name processes only in that boot of this host
        pid = other.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and may_run(pid, boot=boot):
            raise UserError(f"--out {self.path.parent}: another batch (process {pid}) is writing there; wait "
                            "for it to finish, or choose another --out")
        workers = [w for w in other.get("workers", []) if isinstance(w, int) and w != os.getpid()]
        deadline = time.monotonic() + WORKERS_GONE_WAIT
        while any(may_run(w, boot=boot) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)  # its workers got SIGKILL with it: their end is a matter of moments
        alive = [w for w in workers if may_run(w, boot=boot)]
        if alive:
            raise UserError(f"--out {self.path.parent}: the worker processes {alive} of a stopped batch "
                            "are still running; wait for them, or choose another --out")
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

    def add_worker(self, pid):
        self.record["workers"].append(pid)
        write_text(self.path, json.dumps(self.record))

    def release(self):
        if self.held:
            self.held = False
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
