"""The `--live` guard: a live session trades only while the command that started it said so.

`sfarm start/up/restart --live` arms each live task it starts by writing `run/<task>.live` in
the node root; the same commands without `--live`, and `stop`/`down`, remove it. A live worker
checks the file before every step: without it, it places no order and says why on its status.
(A file in the node root, not an environment variable: supervisord starts workers with the
environment of the command that deployed it, not of the one that starts them.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sfarm.data.fsio import remove_quietly, write_atomic

HINT = "start it with `sfarm start --live` (and live = true in the task)"


def arm_file(root: Path, task: str) -> Path:
    return root / "run" / f"{task}.live"


def arm(root: Path, task: str, command: str = "sfarm start --live") -> None:
    (root / "run").mkdir(parents=True, exist_ok=True)
    write_atomic(root / "run", f"{task}.live", json.dumps(
        {"task": task, "armed_at": time.time(), "by": command}).encode())


def disarm(root: Path, task: str) -> bool:
    """Remove the arm file; True when there was one."""
    path = arm_file(root, task)
    existed = path.exists()
    remove_quietly(path)
    return existed


def is_armed(root: Path, task: str) -> bool:
    return arm_file(root, task).is_file()
