"""Pool workers that end with the process that started them, even when it is SIGKILLed.

A module of the standard library only, so a spawned worker arms its lifeline before it imports
torch (the window in which a killed parent could otherwise leave it running is the interpreter's
start-up).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int, use_prctl: bool = True) -> None:
    """End this process as soon as the process ``parent`` dies (a pool worker's initializer).

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``; only used
    when the pool was started from the main thread, since the signal follows the thread that
    started the worker); everywhere a daemon thread also checks every half second whether the
    parent is gone. When no worker outlives the parent, multiprocessing's resource tracker sees
    its pipe close and exits too.
    """
    if use_prctl and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the watchdog thread alone
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()
