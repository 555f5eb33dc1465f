"""A task never runs twice: each worker holds its task's lock (`run/<task>.lock`) for its whole
life, and a second worker of the same task (a hand-started `sfarm worker run`, the worker of a
second supervisord) refuses to start, naming the holder.

Under supervisord a refused worker must end for good, not be restarted forever: it stays up
past the program's `startsecs` (an exit sooner counts as a failed start, which supervisord
retries) and exits with `TASK_HELD_EXIT`, the one exit status the program's config calls
expected (templates/supervisor-program.conf), so supervisord leaves it EXITED and `sfarm status`
says why (sfarm.status.model).
"""

from __future__ import annotations

import os
import time

from sfarm.errors import RunError
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.locks import HeldLock, Holder, read_holder, try_lock
from sfarm.status import TASK_HELD_EXIT

START_SECONDS = 2  # the programs' startsecs (templates/supervisor-program.conf)


class TaskHeld(RunError):
    """Another process holds the task's lock."""

    exit_code = TASK_HELD_EXIT


def held_message(root: NodeRoot, task: str, holder: Holder | None) -> str:
    who = holder.describe() if holder is not None else "a process that is still starting"
    return (f"task {task} already runs on this node: its worker is {who}, holding "
            f"{root.task_lock(task)}")


def hold_task(root: NodeRoot, task: str) -> HeldLock:
    """Take `task`'s lock for this process's life; TaskHeld naming the holder when another
    process has it."""
    lock = try_lock(root.task_lock(task))
    if lock is None:
        raise TaskHeld(held_message(root, task, read_holder(root.task_lock(task))),
                       hint="`sfarm down` ends every process of the node, then `sfarm up` "
                            "starts one worker per task")
    return lock


def task_holder(root: NodeRoot, task: str) -> Holder | None:
    """The live process holding `task`'s lock, None when none does (read, never taken)."""
    return read_holder(root.task_lock(task))


def outlast_start_seconds() -> None:
    """Under supervisord, stay up past startsecs so that the exit that follows is taken as
    meant (see the module's doc) and the program is not started again."""
    if os.environ.get("SUPERVISOR_ENABLED"):
        time.sleep(START_SECONDS + 1)
