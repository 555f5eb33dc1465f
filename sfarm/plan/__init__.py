"""The planner: from an inventory and a network, every dataset with its producer and consumers,
the cross-node transfers and the problems. Pure logic, never touches files, SSH or processes.

May import sfarm.tasks (the task models), sfarm.indicators.spec and sfarm.data.ids. It reads the
inventory by shape (`PlannableInventory`) and never imports sfarm.inventory: the inventory
checks every network's plan when it loads, so it sits above the planner.
"""

from sfarm.plan.datasets import DatasetNeed, task_inputs, task_outputs
from sfarm.plan.planner import (
    DatasetPlan,
    NodePlan,
    Plan,
    PlannableInventory,
    PlanProblem,
    TaskRef,
    Transfer,
    plan_network,
)

__all__ = [
    "DatasetNeed", "DatasetPlan", "NodePlan", "Plan", "PlanProblem", "PlannableInventory",
    "TaskRef", "Transfer", "plan_network", "task_inputs", "task_outputs",
]
