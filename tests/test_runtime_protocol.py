"""The JSON that carries a node's side of farm commands over SSH round-trips exactly."""

from __future__ import annotations

from sfarm.runtime.node import Deployment, NodeFile, StepResult
from sfarm.runtime.protocol import (
    deployment_from_json,
    deployment_to_json,
    steps_from_json,
    steps_to_json,
)
from sfarm.runtime.supervisor import Program


def test_deployment_round_trip_keeps_bytes_modes_and_programs() -> None:
    deployment = Deployment(
        network="prod", node="quant-1",
        files=(NodeFile("inventory.toml", b'version = 1\n[farm]\nname = "x"\n'),
               NodeFile("secrets/secrets.toml", bytes(range(256)), mode=0o600)),
        programs=(Program("sim-binance", ("python", "-m", "sfarm", "sim", "serve")),
                  Program("mine", ("python", "-m", "sfarm", "worker", "run", "--task", "mine"),
                          {"TZ": "UTC"}, autostart=False)),
        tasks={"mine": "mine"})
    back = deployment_from_json(deployment_to_json(deployment))
    assert back == deployment


def test_steps_round_trip() -> None:
    steps = [StepResult("directories", "changed", "data, run"), StepResult("supervisord", "ok")]
    assert steps_from_json(steps_to_json(steps)) == steps
