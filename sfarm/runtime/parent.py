"""A supervised process never outlives its supervisor: the kernel signals it when its parent
dies (Linux's PR_SET_PDEATHSIG), so a supervisord killed outright (kill -9, OOM) leaves no
worker behind to run on unsupervised (a live session placing orders nobody can stop, a second
worker per task after the next `up`)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have `signum` sent to this process when its parent dies (a clean stop: the worker's
    SIGTERM handler finishes its step); when the parent is already gone, send it now. A no-op
    but for a warning where the kernel has no such request."""
    parent = os.getppid()
    if not sys.platform.startswith("linux"):
        log.warning("this process may outlive its supervisor: no parent-death signal here")
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        log.warning("cannot ask for a parent-death signal: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)
