"""The wire format of `sfarm node ...`: a node's side of a farm command, driven over SSH.

The controller sends a command's input as JSON on stdin and reads its result as JSON on stdout,
so nothing it sends (file contents, secrets among them) ever appears in a command line, a
process list or a log. Pure encoding: no I/O here.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sfarm.runtime.node import Deployment, NodeFile, StepResult
from sfarm.runtime.supervisor import Program


def deployment_to_json(deployment: Deployment) -> bytes:
    document = {
        "network": deployment.network, "node": deployment.node,
        "files": [{"path": f.path, "mode": f.mode,
                   "content": base64.b64encode(f.content).decode("ascii")}
                  for f in deployment.files],
        "programs": [{"name": p.name, "command": list(p.command),
                      "environment": dict(p.environment), "autostart": p.autostart}
                     for p in deployment.programs],
        "tasks": deployment.tasks,
    }
    return json.dumps(document).encode()


def deployment_from_json(data: bytes) -> Deployment:
    document = json.loads(data)
    return Deployment(
        network=document["network"], node=document["node"],
        files=tuple(NodeFile(f["path"], base64.b64decode(f["content"]), int(f["mode"]))
                    for f in document["files"]),
        programs=tuple(Program(p["name"], tuple(p["command"]), dict(p["environment"]),
                               bool(p["autostart"])) for p in document["programs"]),
        tasks=dict(document["tasks"]))


def steps_to_json(steps: list[StepResult]) -> bytes:
    return json.dumps([step.to_json() for step in steps]).encode()


def steps_from_json(data: bytes) -> list[StepResult]:
    rows: list[dict[str, Any]] = json.loads(data)
    return [StepResult(row["step"], row["status"], row.get("detail", "")) for row in rows]
