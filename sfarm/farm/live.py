"""Live arming as the farm sees it: which tasks a command arms or disarms, and what the operator
is told about it (sfarm.trading.live_guard holds the node's side)."""

from __future__ import annotations

from sfarm.farm.results import Note
from sfarm.inventory import LoadedInventory
from sfarm.remote.controller import NodeOutcome
from sfarm.tasks import TradeTask

# Commands after which a live task that is not armed stays stopped: nothing to tell then.
STOPPING = ("stop", "down")


def live_tasks(inventory: LoadedInventory, names: list[str]) -> list[str]:
    """The live trade tasks among `names`."""
    return [name for name in names
            if isinstance(task := inventory.model.tasks[name], TradeTask) and task.mode == "live"]


def arming_notes(command: str, armed: bool, outcomes: list[NodeOutcome],
                 live_of: dict[str, list[str]]) -> list[Note]:
    """What to tell about arming (`armed`) or disarming the live tasks `live_of` (node -> its
    live tasks) for `command`: nodes that could not do it (their live tasks place no order),
    live tasks started unarmed, and a --live that armed nothing."""
    from sfarm.trading.live_guard import HINT

    notes = []
    for outcome in outcomes:
        if not outcome.ok:
            notes.append(Note("error", f"could not {'arm' if armed else 'disarm'} its live "
                                       f"tasks: {outcome.error or 'a step failed'}",
                              outcome.node))
        elif not armed and command not in STOPPING:
            kept = {step.step.removeprefix("keep armed ") for step in outcome.steps
                    if step.step.startswith("keep armed ")}
            notes += [Note("note", f"live task {name} on {outcome.node} stays armed: its worker "
                                   "was left running (its definition did not change)"
                           if name in kept else
                           f"live task {name} on {outcome.node} places no order: {HINT}",
                           outcome.node) for name in live_of.get(outcome.node, [])]
    if armed and not any(live_of.values()):
        notes.append(Note("note", "--live: none of the tasks started is a live trade task"))
    return notes
