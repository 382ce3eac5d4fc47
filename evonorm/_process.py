"""Process helpers shared by the project's worker pools."""

from __future__ import annotations

import os

__all__ = ["die_with_parent"]


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
