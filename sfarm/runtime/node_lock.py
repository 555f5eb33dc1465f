"""One change of a node root at a time: a deploy's apply (and the start of its supervisord), a
`down`, a start that must first start supervisord, hold the root's lock (`deploy.lock`), so two
`sfarm up` or `deploy` of one node, from any machine, take turns instead of starting two
supervisords at once. The second one waits, says for whom (on stderr: a local node's operator
reads it as it waits), and gives up after `NODE_LOCK_WAIT_S` naming the holder.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sfarm.errors import RunError
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.locks import Holder, LockBusy, wait_lock
from sfarm.runtime.protocol import StepResult

NODE_LOCK_WAIT_S = 120.0  # a deploy's apply takes seconds: two minutes is one stuck




@dataclass
class Turn:
    """What taking the lock cost: whom it waited for (None: nobody) and how long."""

    waited_for: Holder | None = None
    waited_s: float = 0.0
    waited: bool = False

    def steps(self) -> list[StepResult]:
        """A step saying whom it waited for; none when it did not wait."""
        if not self.waited:
            return []
        who = self.waited_for.describe() if self.waited_for else "another command"
        return [StepResult("node lock", "ok", f"waited {self.waited_s:.0f} s for {who}")]


@contextmanager
def node_turn(root: NodeRoot, operator: str = "",
              wait_s: float = NODE_LOCK_WAIT_S) -> Iterator[Turn]:
    """Hold the lock of `root` (a directory that exists) for the block; RunError naming the
    holder when it is still held after `wait_s` seconds."""
    turn = Turn()
    began = time.monotonic()

    def waiting(holder: Holder | None) -> None:
        turn.waited, turn.waited_for = True, holder
        who = holder.describe() if holder is not None else "a command that is starting"
        print(f"{root.path}: waiting up to {wait_s:.0f} s for {who} to finish with this node",
              file=sys.stderr, flush=True)

    try:
        lock = wait_lock(root.node_lock, wait_s, operator=operator, on_wait=waiting)
    except LockBusy as busy:
        who = busy.holder.describe() if busy.holder is not None else "another command"
        raise RunError(f"{root.path} is busy: {who} has been changing it for more than "
                       f"{wait_s:.0f} s", hint=f"wait for it to finish, or end it: its lock "
                       f"is {root.node_lock}") from None
    turn.waited_s = time.monotonic() - began
    with lock:
        yield turn
