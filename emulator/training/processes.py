"""The user's processes (training scripts, model servers): each in its own process group, and none outliving the
emulator — whatever is still running when the emulator's interpreter exits is killed with its group."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading

_live: set[int] = set()
_lock = threading.Lock()


def spawn(command: list[str], **kwargs) -> subprocess.Popen:
    """`subprocess.Popen` in a new session (so a signal reaches the whole group), remembered until `reap`."""
    proc = subprocess.Popen(command, start_new_session=True, **kwargs)
    with _lock:
        _live.add(proc.pid)
    return proc


def signal_group(proc: subprocess.Popen, sig: int) -> bool:
    """Send `sig` to the process's group; False if the group is gone."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True


def reap(proc: subprocess.Popen) -> int:
    """Wait for the group leader to end, kill what its group left behind (while the unreaped leader still holds the
    group's id, so the signal cannot reach a stranger), then reap it and forget it. Returns the exit code."""
    if proc.returncode is None:  # not reaped yet: its group id is still ours
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        signal_group(proc, signal.SIGKILL)
    code = proc.wait()
    with _lock:
        _live.discard(proc.pid)
    return code


@atexit.register
def _kill_all() -> None:
    with _lock:
        groups = list(_live)
        _live.clear()
    for pid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
