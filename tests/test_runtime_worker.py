"""The worker loop: heartbeats, retries with backoff, clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sfarm.backoff import Backoff
from sfarm.context import TaskContext
from sfarm.inventory.model import MineTask
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.worker import run_worker, task_context
from sfarm.status import Heartbeat
from tests.fixtures.waiting import wait_for

MINE = MineTask.model_validate({"kind": "mine", "exchange": "x", "markets": ["BTC/USDT"],
                                "timeframes": ["1m"], "since": "2024-01-01"})


def read_heartbeat(root: Path, task: str) -> Heartbeat:
    return Heartbeat.model_validate_json(NodeRoot(root).heartbeat(task).read_text())


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=10.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_failing_engine_is_retried_and_its_error_reported(tmp_path: Path) -> None:
    context = TaskContext(tmp_path, "t", MINE)
    attempts: list[float] = []

    def engine(ctx: TaskContext[MineTask]) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError(f"exchange down ({len(attempts)})")
        ctx.board.output("candles/x/BTC-USDT/1m", 123, 7)

    status = run_worker(context, engine, interval_s=0.05, backoff=Backoff(0.01, 0.02),
                        handle_signals=False)
    assert status == 0
    assert len(attempts) == 3
    beat = read_heartbeat(tmp_path, "t")
    assert beat.state == "stopped"
    assert beat.last_error == "ConnectionError: exchange down (2)"
    assert beat.outputs[0].rows == 7


WORKER = textwrap.dedent("""
    import sys, time
    from sfarm.context import TaskContext
    from sfarm.inventory.model import MineTask
    from sfarm.runtime.worker import run_worker

    def engine(ctx):
        step = 0
        while not ctx.stop.is_set():
            step += 1
            ctx.board.count("steps")
            time.sleep(0.05)  # one step of work is never interrupted halfway

    from pathlib import Path
    task = MineTask.model_validate({"kind": "mine", "exchange": "x", "markets": ["BTC/USDT"],
                                    "timeframes": ["1m"], "since": "2024-01-01"})
    context = TaskContext(Path(sys.argv[1]), "t", task)
    sys.exit(run_worker(context, engine, interval_s=0.1))
""")


def test_sigterm_finishes_the_step_and_exits_zero(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)])
    try:
        wait_for(lambda: NodeRoot(tmp_path).heartbeat("t").exists()
                 and read_heartbeat(tmp_path, "t").counters.get("steps", 0) > 2,
                 what="three steps on the heartbeat")
        assert read_heartbeat(tmp_path, "t").state == "running"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
    final = json.loads(NodeRoot(tmp_path).heartbeat("t").read_text())
    assert final["state"] == "stopped"
    assert final["pid"] == process.pid


def test_task_context_of_a_node_root_names_its_secrets_and_kind(tmp_path: Path) -> None:
    context = task_context(NodeRoot(tmp_path), "t", MINE)
    assert context.root == tmp_path and context.kind == "mine"
    assert context.secrets_file == NodeRoot(tmp_path).secrets / "secrets.toml"


def test_engines_import_their_context_without_the_runtime() -> None:
    """The engine packages sit below the runtime: their context comes from `sfarm.context`."""
    code = ("import sys, sfarm.context, sfarm.mining.run, sfarm.indicators.task, "
            "sfarm.trading.task, sfarm.trading.live\n"
            "print(sorted(m for m in sys.modules if m.startswith('sfarm.runtime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
