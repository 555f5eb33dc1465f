"""The valid part of an invalid inventory, so one `validate` reports every problem at once.

pydantic stops at values; the checks across sections need a model. Dropping each entry whose
value failed (a task, an exchange, a node, a network, or the `farm`/`defaults` table, which then
take their defaults) leaves a model of the rest, and the cross-section checks run on it. A
reference to a dropped entry is no second problem: the name is declared, only its value is
wrong (`sfarm.inventory.checks.Declared`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from sfarm.inventory.model import Inventory

# Sections made of named entries: a failing entry goes, its siblings stay.
_NAMED_SECTIONS = ("exchanges", "tasks", "networks")
# Tables with defaults for every key: a failing one is replaced by its defaults.
_DEFAULTED_TABLES = ("farm", "defaults")


def valid_part(raw: dict[str, Any], error: ValidationError) -> Inventory | None:
    """The model of what validates once the failing entries are dropped; None when a failure
    is not inside a droppable entry (a missing `version`, no networks left...)."""
    pruned = copy.deepcopy(raw)
    failure: ValidationError | None = error
    # A second pass: dropping a network's last node makes the network itself fail.
    for _ in range(2):
        if failure is None:
            break
        if not all(_drop(pruned, tuple(detail["loc"])) for detail in failure.errors()):
            return None
        try:
            return Inventory.model_validate(pruned)
        except ValidationError as again:
            failure = again
    return None


def _drop(raw: dict[str, Any], loc: Sequence[Any]) -> bool:
    """Remove the entry that `loc` points into; False when there is none to remove."""
    if not loc:
        return False
    head = loc[0]
    if head in _DEFAULTED_TABLES:
        raw.pop(head, None)
        return True
    if head not in _NAMED_SECTIONS or len(loc) < 2:
        return False
    section = raw.get(head)
    if not isinstance(section, dict):
        return False
    if head == "networks" and len(loc) >= 4 and loc[2] == "nodes":
        network = section.get(loc[1])
        nodes = network.get("nodes") if isinstance(network, dict) else None
        if isinstance(nodes, dict) and loc[3] in nodes:
            del nodes[loc[3]]
            return True
    section.pop(loc[1], None)
    return True
