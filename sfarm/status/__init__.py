"""Farm status: the worker heartbeat format and the rules that turn a supervisor's process
state plus a heartbeat into a task's state, and the logs of a service into its state
(services.py). Pure models; collection over nodes comes with the runtime. May import pydantic
only."""

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
    ServiceStatus,
    TaskState,
    TaskStatus,
    TradeProgress,
    task_status,
)

__all__ = ["TASK_HELD_EXIT", "TASK_STATES", "DatasetProgress", "DatasetStatus", "Heartbeat",
           "InputStatus", "NetworkStatus", "NodeStatus", "Observed", "ServiceStatus", "TaskState",
           "TaskStatus", "TradeProgress", "task_status"]
