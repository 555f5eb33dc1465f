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


def test_read_log_tails_then_follows_across_a_rotation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sfarm.runtime.layout import NodeRoot
    from sfarm.runtime.node import read_log

    root = NodeRoot(tmp_path)
    log = root.log("mine")
    log.parent.mkdir(parents=True)
    assert read_log(root, "mine") == read_log(root, "mine", offset=7)  # no log yet: nothing
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    first = read_log(root, "mine", lines=3)
    assert first.lines == ["line 97", "line 98", "line 99"] and first.offset == log.stat().st_size
    with log.open("a") as handle:
        handle.write("line 100\n")
    after = read_log(root, "mine", offset=first.offset)
    assert after.lines == ["line 100"] and after.offset == log.stat().st_size
    log.write_text("rotated 1\n")  # supervisord rotated it: shorter than the offset
    assert read_log(root, "mine", offset=after.offset).lines == ["rotated 1"]
