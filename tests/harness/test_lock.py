"""One writer per results folder; the lock dies with its holder, even under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from step7bench.errors import UserError
from step7bench.harness.lock import FolderLock

HOLD = "import sys, time; from step7bench.harness.lock import FolderLock\n" \
       "with FolderLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(UserError, match=rf"in use by another run \(pid {os.getpid()} since"):
            with FolderLock(tmp_path):
                pass


def test_the_lock_is_free_again_after_release(tmp_path):
    with FolderLock(tmp_path):
        pass
    with FolderLock(tmp_path):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            with FolderLock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
    with FolderLock(tmp_path):
        pass
