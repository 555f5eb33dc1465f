"""The dashboard's pure parts: the task table's rows and filter, and what each action means on
a selection (no terminal, no farm)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfarm.farm import FarmReport
from sfarm.remote.controller import NodeOutcome
from sfarm.runtime.protocol import StepResult
from sfarm.status import DatasetStatus, InputStatus, NetworkStatus, NodeStatus, TaskStatus
from sfarm.tui.actions import Selection, outcome, plan
from sfarm.tui.rows import RowFilter, TaskRow, task_rows

NOW = 1_764_000_000.0
STATUS = NetworkStatus(network="prod", nodes=[
    NodeStatus(name="lab", host="local", reachable=True, tasks=[
        TaskStatus(name="mine", kind="mine", state="running", heartbeat_age_s=3.2,
                   datasets=[DatasetStatus(id="candles/sim/BTC-USDT/1m", rows=1200,
                                           last_ts=1_763_999_940_000, lag_s=0.0)]),
        TaskStatus(name="rsi", kind="trade", state="failed", last_error="boom\ntraceback",
                   inputs=[InputStatus(id="candles/sim/BTC-USDT/1m", source_node="lab")]),
    ]),
    NodeStatus(name="far", host="10.0.0.9", reachable=False, error="connection refused\nmore"),
])


def test_rows_one_per_task_and_one_per_silent_node() -> None:
    rows = task_rows(STATUS, NOW)
    assert [row.key for row in rows] == ["lab/mine", "lab/rsi", "far/"]
    mine, rsi, far = rows
    assert mine.cells() == ("lab", "mine", "mine", "running", "3s", "2025-11-24 15:59", "0s",
                            "1,200", "")
    assert rsi.note == "boom"  # the first line only: the table keeps one line a row
    assert (far.state, far.task, far.note) == ("unreachable", None, "connection refused")


def test_filter_terms_and_words() -> None:
    rows = task_rows(STATUS, NOW)

    def kept(text: str) -> list[str]:
        return [row.key for row in rows if RowFilter.parse(text).matches(row)]

    assert kept("") == ["lab/mine", "lab/rsi", "far/"]
    assert kept("state:failed,unreachable") == ["lab/rsi", "far/"]
    assert kept("node:LAB kind:mine") == ["lab/mine"]
    assert kept("boom") == ["lab/rsi"]
    assert kept("refused node:far") == ["far/"]
    assert kept("state:") == []  # an empty term is a word: no row has "state:" in it
    assert not RowFilter.parse("  ") and RowFilter.parse("x")


@given(st.text(max_size=40))
def test_any_filter_text_parses_and_never_raises(text: str) -> None:
    row = TaskRow("lab", "mine", "mine", "running", "1s", "-", "-", "-", "")
    assert RowFilter.parse(text).matches(row) in (True, False)


def test_plans_say_what_they_do_and_arming_needs_a_live_task_and_a_typed_name() -> None:
    live = frozenset({"live-rsi"})
    stop = plan("stop", Selection("lab", "mine"), live_tasks=live, network="prod")
    assert not isinstance(stop, str)
    assert stop.question == "Stop the worker of task mine on lab?" and stop.type_word is None
    everything = plan("restart", Selection(), live_tasks=live, network="prod")
    assert not isinstance(everything, str) and everything.danger
    assert "every worker of every node of network prod" in everything.question
    assert "start disarmed" in everything.question
    assert plan("arm", Selection("lab", "mine"), live_tasks=live, network="prod") \
        == "arming applies to a live trade task: select one in the table"
    arm = plan("arm", Selection("lab", "live-rsi"), live_tasks=live, network="prod")
    assert not isinstance(arm, str) and arm.type_word == "live-rsi" and "REAL" in arm.question
    deploy = plan("deploy", Selection("lab", "mine"), live_tasks=live, network="prod")
    assert not isinstance(deploy, str) and deploy.target == Selection("lab")


def test_outcome_names_failures() -> None:
    stop = plan("stop", Selection("lab", "mine"), live_tasks=frozenset(), network="prod")
    assert not isinstance(stop, str)
    done = FarmReport("stop", [NodeOutcome("lab", [StepResult("stop mine", "changed")])])
    assert outcome(stop, done) == ("stop task mine on lab: done (1 changed)", False)
    failed = FarmReport("stop", [NodeOutcome("lab", [StepResult("stop mine", "failed", "no")]),
                                 NodeOutcome("far", [], "unreachable: refused\nhint: x")])
    message, bad = outcome(stop, failed)
    assert bad and message.splitlines() == ["stop task mine on lab: failed on lab, far",
                                            "lab: stop mine: no", "far: unreachable: refused"]
