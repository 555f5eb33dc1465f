"""The planner: from an inventory and a network, every dataset with its producer and consumers,
the cross-node transfers and the problems. Pure logic: imports sfarm.inventory models and
sfarm.data.ids, never touches files, SSH or processes."""

from sfarm.plan.datasets import DatasetNeed, task_inputs, task_outputs
from sfarm.plan.planner import DatasetPlan, NodePlan, Plan, PlanProblem, TaskRef, Transfer, plan_network

__all__ = [
    "DatasetNeed", "DatasetPlan", "NodePlan", "Plan", "PlanProblem", "TaskRef", "Transfer",
    "plan_network", "task_inputs", "task_outputs",
]
