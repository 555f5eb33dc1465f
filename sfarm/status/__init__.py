"""Farm status: the worker heartbeat format and the rules that turn a supervisor's process
state plus a heartbeat into a task's state. Pure models; collection over nodes comes with the
runtime. May import pydantic only."""

from sfarm.status.model import (
    TASK_HELD_EXIT,
    TASK_STATES,
    DatasetProgress,
    DatasetStatus,
    Heartbeat,
    InputStatus,
    NetworkStatus,
    NodeStatus,
    Observed,
    TaskState,
    TaskStatus,
    TradeProgress,
    task_status,
)

__all__ = ["TASK_HELD_EXIT", "TASK_STATES", "DatasetProgress", "DatasetStatus", "Heartbeat",
           "InputStatus", "NetworkStatus", "NodeStatus", "Observed", "TaskState", "TaskStatus",
           "TradeProgress", "task_status"]
