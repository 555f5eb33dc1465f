"""The `--live` guard: a live session trades only while an operator's act armed the very
process that runs it.

`sfarm start/up/restart --live` (or the dashboard) arms each live task it started by writing
`run/<task>.live` in the node root with the pid of the task's worker, once supervisord runs it;
the same commands without `--live`, and `stop`/`down`, remove it. A live worker checks the file
before every step: unless it names its own pid, it places no order and says why on its status.
So arming never outlives the process it was given to: a worker restarted (by a deploy, a crash
and supervisord's autorestart, a new supervisord after the old one died, a boot) comes up
disarmed until an operator arms it again. (A file in the node root, not an environment
variable: supervisord starts workers with the environment of the command that started it.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sfarm.data.fsio import remove_quietly, write_atomic

HINT = "start it with `sfarm start --live` (and live = true in the task)"


def arm_file(root: Path, task: str) -> Path:
    return root / "run" / f"{task}.live"


def arm(root: Path, task: str, pid: int, command: str = "sfarm start --live") -> None:
    """Arm the worker of `task` whose pid is `pid` (and no other process)."""
    (root / "run").mkdir(parents=True, exist_ok=True)
    write_atomic(root / "run", f"{task}.live", json.dumps(
        {"task": task, "pid": pid, "armed_at": time.time(), "by": command}).encode())


def disarm(root: Path, task: str) -> bool:
    """Remove the arm file; True when there was one."""
    path = arm_file(root, task)
    existed = path.exists()
    remove_quietly(path)
    return existed


def is_armed(root: Path, task: str, pid: int | None = None) -> bool:
    """Whether the worker of `task` with pid `pid` (default: this process) is armed."""
    try:
        record = json.loads(arm_file(root, task).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("pid") == (os.getpid() if pid is None
                                                              else pid)
