"""Former nodes as the farm tells of them: nodes an earlier deploy of the network declared
that the inventory no longer lists (sfarm.runtime.former keeps the nodes' record of them)."""

from __future__ import annotations

from sfarm.farm.results import Note
from sfarm.remote.controller import NodeOutcome
from sfarm.runtime.former import FORMER_STEP


def former_nodes(outcomes: list[NodeOutcome]) -> list[str]:
    """The former nodes any node's deploy steps name, in name order."""
    prefix = f"{FORMER_STEP} "
    return sorted({step.step.removeprefix(prefix) for outcome in outcomes
                   for step in outcome.steps if step.step.startswith(prefix)})


def former_notes(outcomes: list[NodeOutcome]) -> list[Note]:
    """A note per former node: its workers may still run, and how to stop them."""
    return [Note("note", f"node {name} was deployed by an earlier inventory and is no longer "
                         f"listed: its workers may still run; `sfarm down --node {name}` "
                         "stops them", name)
            for name in former_nodes(outcomes)]
