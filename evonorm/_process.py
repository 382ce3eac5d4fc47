"""Process helpers shared by the project's worker pools."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

__all__ = ["die_with_parent", "deadline"]


def die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel kill this worker process when its driver dies (SIGKILL, SIGTERM,
    Ctrl-C), so a killed run leaves no orphan training on the CPU; elsewhere a no-op (the pool then
    ends its workers on a normal exit).

    Call it first thing in the worker with the driver's pid. The death signal follows the *thread*
    that started the worker, so workers must be started by a thread that lives as long as the
    driver (its main thread), not by short-lived pool threads.
    """
    try:
        import ctypes  # noqa: PLC0415
        import signal  # noqa: PLC0415

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the driver died before the signal was armed
        os._exit(1)


# Runs in its own interpreter: waits for the parent to write or close the pipe; on timeout it prints
# the message and kills the parent. Code that blocks inside C++ (holding the GIL, deaf to SIGTERM)
# cannot be interrupted from a thread of its own process.
_WATCHDOG = """
import os, select, signal, sys
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ready, _, _ = select.select([sys.stdin], [], [], seconds)
if not ready:
    sys.stderr.write(message + chr(10))
    sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def deadline(seconds: float, message: str):
    """Kills this process with ``message`` on stderr if the block takes longer than ``seconds``.

    For waits that no exception can end (a TensorFlow cluster waiting for a worker that never comes);
    use it only where nothing has been written yet, since the process ends without cleanup.
    """
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            watchdog.stdin.close()
        finally:
            watchdog.wait()
