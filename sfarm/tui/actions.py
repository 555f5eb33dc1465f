"""The dashboard's actions as data: what an action does to the selection, the question that
confirms it, and what its outcome says. Pure: the app asks, runs and shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sfarm.farm import FarmReport

Verb = Literal["start", "stop", "restart", "deploy", "arm", "disarm"]
VERBS: tuple[Verb, ...] = ("start", "stop", "restart", "deploy", "arm", "disarm")


@dataclass(frozen=True)
class Selection:
    """What the operator points at: the network (no node), a node, or a task on a node."""

    node: str | None = None
    task: str | None = None

    @property
    def label(self) -> str:
        if self.task is not None:
            return f"task {self.task} on {self.node}"
        return f"node {self.node}" if self.node is not None else "the whole network"


@dataclass(frozen=True)
class Plan:
    """An action on a selection: the question asked first, and for arming a live session the
    word the operator must type as a second, explicit confirmation."""

    verb: Verb
    target: Selection
    question: str
    danger: bool = False
    type_word: str | None = None


def plan(verb: Verb, target: Selection, *, live_tasks: frozenset[str],
         network: str) -> Plan | str:
    """The plan of `verb` on `target`, or why it does not apply there. `live_tasks` are the
    network's live trade tasks: arming applies to one of them only."""
    where = target.label if target.node is not None else f"every node of network {network}"
    match verb:
        case "start" | "stop" | "restart":
            danger = verb != "start" and target.task is None
            question = f"{verb.capitalize()} {_workers(target)} of {where}?"
            if verb != "stop" and (target.task in live_tasks or (target.task is None
                                   and live_tasks)):
                question += ("\nLive trade tasks start disarmed: they place no order until "
                             "armed.")
            return Plan(verb, target, question, danger=danger)
        case "deploy":
            if target.task is not None:
                target = Selection(target.node)
                where = target.label
            return Plan(verb, target, f"Deploy {where}: make it match the inventory and "
                                      f"reload its workers that changed?", danger=True)
        case "arm" | "disarm":
            if target.task is None or target.task not in live_tasks:
                return "arming applies to a live trade task: select one in the table"
            if verb == "disarm":
                return Plan(verb, target, f"Disarm live task {target.task} on {target.node}? "
                                          "It keeps running and places no more orders.")
            return Plan(verb, target,
                        f"Arm live task {target.task} on {target.node}?\nIt will place REAL "
                        "orders with real money on its exchange.", danger=True,
                        type_word=target.task)
    raise AssertionError(verb)


def _workers(target: Selection) -> str:
    return "the worker" if target.task is not None else "every worker"


def outcome(plan: Plan, report: FarmReport) -> tuple[str, bool]:
    """What to tell after `plan` ran: a one-paragraph message, and whether it failed."""
    summary = report.summary
    counts = ", ".join(f"{count} {status}" for status, count in summary.steps.items() if count)
    lines = [f"{plan.verb} {plan.target.label}: "
             + ("failed on " + ", ".join(summary.failed) if summary.failed
                else f"done ({counts or 'nothing to do'})")]
    for node in report.nodes:
        if node.error:
            lines.append(f"{node.node}: {node.error.splitlines()[0]}")
        lines += [f"{node.node}: {step.step}: {step.detail}" for step in node.steps
                  if step.status == "failed"]
    lines += [note.message for note in report.notes]
    return "\n".join(lines), not report.ok
