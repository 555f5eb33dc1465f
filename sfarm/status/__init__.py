"""Farm status: the worker heartbeat format and the rules that turn a supervisor's process
state plus a heartbeat into a task's state, and the logs of a service into its state
(services.py). Pure models; collection over nodes comes with the runtime. May import pydantic
only.

Exports are lazy (sfarm.lazy): the service names of services.py (which the inventory's checks
read) load without the models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

_EXPORTS = dict.fromkeys((
    "TASK_HELD_EXIT", "TASK_STATES", "DatasetProgress", "DatasetStatus", "Heartbeat",
    "InputStatus", "NetworkStatus", "NodeStatus", "Observed", "ServiceStatus", "TaskState",
    "TaskStatus", "TradeProgress", "task_status"), "sfarm.status.model")
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfarm.status.model import (  # noqa: F401
        TASK_HELD_EXIT,
        TASK_STATES,
        DatasetProgress,
        DatasetStatus,
        Heartbeat,
        InputStatus,
        NetworkStatus,
        NodeStatus,
        Observed,
        ServiceStatus,
        TaskState,
        TaskStatus,
        TradeProgress,
        task_status,
    )
