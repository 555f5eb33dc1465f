"""A session halted by its kill switch resumes only with `sfarm start --task T --resume`, after
the operator confirms (`--yes` for scripts), and the node's audit log says who resumed it. A
real local farm: a paper session whose committed state is halted as its kill switch would
leave it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sfarm.trading.session import commit, load_session, resumed
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import ALWAYS_IN, SIM_EXCHANGE, head, mine_task
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("1h") + """
[tasks.paper]
kind = "trade"
mode = "paper"
exchange = "sim"
market = "BTC/USDT"
timeframe = "1m"
strategy = "always.toml"
max_drawdown = 0.2

[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "paper"]
"""
WHY = "max_drawdown: equity 79.00 is 21.00% below its peak 100.00 (limit 20.00%)"


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "resume", files={"always.toml": ALWAYS_IN}) as farm:
        yield farm


def test_a_halted_session_resumes_only_when_the_operator_says_so(farm: Farm) -> None:
    farm.sfarm("up")
    wait_for(lambda: load_session(farm.root, "paper") is not None, what="the session's state")
    farm.sfarm("stop", "--task", "paper")
    state = load_session(farm.root, "paper")
    assert state is not None
    halted = replace(state, risk=replace(state.risk, halted=WHY, halted_at=state.last_ts))
    commit(farm.root, "paper", halted)
    farm.sfarm("start", "--task", "paper")
    wait_for(lambda: farm.polled_tasks()["paper"]["state"] == "halted", what="the session halted")
    assert farm.tasks()["paper"]["last_error"] == WHY

    refused = farm.sfarm("start", "--task", "paper", "--resume", check=False)  # no answer
    assert refused.returncode == 1 and "Resume paper" in refused.stderr
    assert farm.tasks()["paper"]["state"] == "halted"

    done = farm.sfarm("start", "--task", "paper", "--resume", "--yes")
    assert f"was halted: {WHY}" in done.stdout
    after = load_session(farm.root, "paper")
    assert after is not None and after.risk.halted is None
    # The kill switch measures anew from the equity it halted at.
    fresh = resumed(halted).risk
    assert (fresh.peak, fresh.day_equity, fresh.halted) == (
        halted.risk.last_equity, halted.risk.last_equity, None)
    wait_for(lambda: farm.polled_tasks()["paper"]["state"] == "running", what="the session trading")
    entries = [json.loads(line) for line in
               (farm.root / "logs" / "audit.log").read_text().splitlines()]
    assert entries[-1]["what"] == "resume paper" and entries[-1]["detail"] == f"halted: {WHY}"

    again = farm.sfarm("start", "--task", "paper", "--resume", "--yes", "--json")
    steps = json.loads(again.stdout)["nodes"][0]["steps"]
    assert {"step": "resume paper", "status": "ok", "detail": "not halted"} in steps
