"""Whether the process a record names (a lock file, a temporary file's name) may still be running.

A pid means something only on the host, and in the boot, where it was written: a record carries them where it
can, and a process recorded elsewhere can never be proven gone from here (only other evidence, such as a
file's age, can retire its record). On this host and boot a pid that no process has is gone; one that some
process has may be a reused pid, so it counts as running.
"""
import hashlib
import os
import socket

HOST = socket.gethostname()
HOST_TAG = hashlib.md5(HOST.encode()).hexdigest()[:8]  # HOST in a file name: short, and hex digits only


def boot_id():
    """This boot of this machine ("" where the kernel does not say)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def may_run(pid, host=HOST, boot=None):
    """False only when process `pid`, recorded on `host` (its name, or HOST_TAG) in boot `boot` (None: the
    record does not say), is provably gone: recorded on this host, in this boot, and no process has the pid."""
    if host not in (HOST, HOST_TAG):
        return True  # another machine's pid: nothing here can tell
    if boot is not None and boot != boot_id():
        return False  # recorded before this machine last started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
