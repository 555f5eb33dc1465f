"""Status refreshes that a slow or dead node never holds up (status --watch, the dashboard).

Each node's status is asked in the background; a refresh waits for the answers at most a
short while and reports a node still connecting or answering as such, while its request goes
on and answers a later refresh. A node is never asked twice at once. The first refresh waits
for every node up to the connect timeout (and a little more), so the first screen is whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from sfarm.inventory import NodeSpec
from sfarm.status import NodeStatus

REFRESH_WAIT_S = 1.0  # how long a later refresh waits for slow nodes
FIRST_EXTRA_S = 2.0  # the first refresh: the connect timeout and this for the request


class StatusRefresher:
    """Refreshes of `nodes` with `collect(node) -> NodeStatus` (which never raises: a node's
    failure is its row)."""

    def __init__(self, collect: Callable[[NodeSpec], NodeStatus], connect_timeout: float,
                 workers: int) -> None:
        self._collect = collect
        self._first_wait_s = connect_timeout + FIRST_EXTRA_S
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sfarm-status")
        self._pending: dict[str, tuple[Future[NodeStatus], float]] = {}
        self._last: dict[str, NodeStatus] = {}
        self._refreshed = False

    def refresh(self, nodes: Sequence[NodeSpec]) -> list[NodeStatus]:
        """Every node's row, in node order, within about REFRESH_WAIT_S (the first time: the
        connect timeout and FIRST_EXTRA_S)."""
        began = time.monotonic()
        for spec in nodes:
            if spec.name not in self._pending:
                self._pending[spec.name] = (self._pool.submit(self._collect, spec), began)
        wait([self._pending[spec.name][0] for spec in nodes],
             timeout=REFRESH_WAIT_S if self._refreshed else self._first_wait_s)
        self._refreshed = True
        return [self._row(spec) for spec in nodes]

    def _row(self, spec: NodeSpec) -> NodeStatus:
        future, since = self._pending[spec.name]
        if future.done():
            del self._pending[spec.name]
            self._last[spec.name] = future.result()
            return self._last[spec.name]
        last = self._last.get(spec.name)
        if last is not None and not last.reachable:
            return last  # still unreachable, as far as anyone knows: its last reason stands
        waited = time.monotonic() - since
        return NodeStatus(name=spec.name, host=spec.host, reachable=False,
                          error=f"no answer for {waited:.0f} s (still waiting)")

    def close(self) -> None:
        """Stop asking; requests under way end on their own (each within its timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
