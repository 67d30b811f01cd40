"""liveness.may_run: a recorded process counts as gone only when this machine can prove it."""
import os
import subprocess

from legacy_nst import liveness


def test_a_process_is_gone_only_when_this_host_and_boot_can_tell():
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: no process has its pid now
    boot = liveness.boot_id()
    assert liveness.may_run(os.getpid()) and liveness.may_run(os.getpid(), liveness.HOST, boot)
    assert not liveness.may_run(finished.pid) and not liveness.may_run(finished.pid, liveness.HOST_TAG)
    assert liveness.may_run(finished.pid, "another-host")  # its pid means nothing here
    assert not liveness.may_run(os.getpid(), boot="an earlier boot")  # a pid from before this boot
