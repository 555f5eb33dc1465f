"""Turn pydantic's validation errors into problems a person can act on."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from pydantic import BaseModel, ValidationError

from sfarm.inventory.model import SECTION_MODELS
from sfarm.inventory.problems import Problem, closest, did_you_mean
from sfarm.inventory.source import KeyPath
from sfarm.tasks import TASK_KINDS

_NAME_RULE = "a name of letters, digits, '-', '_' or '.' (up to 64 characters)"
# Keys whose values are never repeated in a message: a mistaken value there may be a secret
# (`credentials = "<the API key itself>"`), and a message is printed and logged.
_SECRET_KEYS = frozenset({"credentials"})


def problems_from_validation(error: ValidationError, raw: dict[str, Any]) -> list[Problem]:
    details = error.errors(include_url=False)
    problems = [_problem(detail, raw) for detail in details]
    # `hots = ...` makes two errors, unknown 'hots' and missing 'host'; the first says it all.
    misspelt = {path for path in map(_misspelt_key, details, [raw] * len(details)) if path}
    problems = [problem for problem, detail in zip(problems, details, strict=True)
                if not (detail["type"] == "missing" and problem.path in misspelt)]
    # pydantic reports a failed union member once per candidate; keep each message once.
    unique: dict[tuple[KeyPath, str], Problem] = {}
    for problem in problems:
        unique.setdefault((problem.path, problem.message), problem)
    return list(unique.values())


def _misspelt_key(detail: Any, raw: dict[str, Any]) -> KeyPath | None:
    """For an unknown key that is a near miss of a known one, the path of the known key."""
    if detail["type"] != "extra_forbidden":
        return None
    path = _strip_tags(tuple(detail["loc"]))
    model = _section_model(path[:-1], raw)
    match = closest(str(path[-1]), model.model_fields) if model else None
    return (*path[:-1], match) if match else None


def _strip_tags(loc: tuple[Any, ...]) -> KeyPath:
    """Drop the discriminator tag pydantic puts in task paths:
    tasks.x.mine.markets -> tasks.x.markets."""
    if len(loc) >= 3 and loc[0] == "tasks" and loc[2] in TASK_KINDS:
        loc = loc[:2] + loc[3:]
    return tuple(part for part in loc if isinstance(part, (str, int)))


def _section_model(path: KeyPath, raw: dict[str, Any]) -> type[BaseModel] | None:
    """The model that describes the table at `path`, to suggest its keys."""
    if not path:
        return SECTION_MODELS[""]
    head = path[0]
    if head in ("farm", "defaults") and len(path) == 1:
        return SECTION_MODELS[head]
    if head == "exchanges" and len(path) == 2:
        return SECTION_MODELS["exchanges.*"]
    if head == "tasks" and len(path) == 2:
        task = raw.get("tasks", {}).get(path[1], {})
        kind = task.get("kind") if isinstance(task, dict) else None
        return SECTION_MODELS.get(f"tasks.*.{kind}")
    if head == "networks" and len(path) == 2:
        return SECTION_MODELS["networks.*"]
    if head == "networks" and len(path) == 4 and path[2] == "nodes":
        return SECTION_MODELS["networks.*.nodes.*"]
    return None


def _problem(detail: Any, raw: dict[str, Any]) -> Problem:
    kind: str = detail["type"]
    loc = tuple(detail["loc"])
    value = detail.get("input")
    if "[key]" in loc:
        # pydantic's loc for a bad dict key is (..., key, "[key]"): the key is already there.
        path = _strip_tags(loc[: loc.index("[key]")])
        return Problem(path, f"{path[-1]!r} is not {_NAME_RULE}")
    path = _strip_tags(loc)

    if kind == "extra_forbidden":
        key = str(path[-1])
        model = _section_model(path[:-1], raw)
        fields = list(model.model_fields) if model else []
        return Problem(path, f"unknown key {key!r}",
                       did_you_mean(key, fields) or (f"expected one of: {', '.join(fields)}"
                                                     if fields else None))
    if kind == "missing":
        return Problem(path, f"missing required key {str(path[-1])!r}")
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        if not isinstance(value, dict):  # `tasks.x = "mine"`: no table, so no kind to read
            return Problem(path, f"expected a table, got {_describe(value)}")
        tag = value.get("kind")
        if tag is None:
            return Problem((*path, "kind"), "missing required key 'kind'",
                           f"one of: {', '.join(TASK_KINDS)}")
        if not isinstance(tag, str):
            return Problem((*path, "kind"), f"expected a task kind, got {_describe(tag)}",
                           f"one of: {', '.join(TASK_KINDS)}")
        return Problem((*path, "kind"), f"unknown task kind {tag!r}",
                       did_you_mean(str(tag), TASK_KINDS) or f"one of: {', '.join(TASK_KINDS)}")
    if kind == "string_pattern_mismatch":
        return Problem(path, f"expected {_NAME_RULE}, got {value!r}")
    if kind == "too_short":
        return Problem(path, _too_short_message(path))
    if kind == "model_type" or kind == "dict_type":
        return Problem(path, f"expected a table, got {_describe(value)}")
    if kind == "list_type":
        return Problem(path, f"expected an array such as [\"a\", \"b\"], got {_describe(value)}")
    message: str = detail["msg"]
    message = message.removeprefix("Value error, ")
    message = message.replace("Input should be", "expected").replace("Input", "value")
    message = message.replace("String should have", "expected")
    return Problem(path, _with_value(message, path, value))


def _with_value(message: str, path: KeyPath, value: Any) -> str:
    """`message, got VALUE` unless the message already quotes the value (a validator's own
    words) or the key may hold a secret. Every refused value is shown: `cash = -5` is
    `expected greater than 0, got a number (-5)`, not only `expected greater than 0`."""
    if path and path[-1] in _SECRET_KEYS:
        return message
    if not isinstance(value, (str, int, float, date, time)):  # arrays and tables: too long
        return message
    if "got " in message:  # the validator said what it got (sfarm.timepoints, indicator specs)
        return message
    if isinstance(value, str) and value and (repr(value) in message or f'"{value}"' in message):
        return message
    if isinstance(value, bool) and f"= {str(value).lower()}" in message:  # emulate = true needs
        return message
    return f"{message}, got {_describe(value)}"


def _too_short_message(path: KeyPath) -> str:
    if len(path) == 3 and path[0] == "networks" and path[2] == "nodes":
        return "a network needs at least one node ([networks.NAME.nodes.NODE] with host and tasks)"
    if path == ("networks",):
        return "the inventory declares no network ([networks.NAME.nodes.NODE])"
    return "expected at least one value"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (date, time)):  # TOML dates and times (datetime is a date)
        kind = "a date" if isinstance(value, date) else "a time"
        return f"{kind} ({value.isoformat()})"
    return repr(value)
