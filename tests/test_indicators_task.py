"""The `indicators` task on a real dataset store: catch-up, waking on new candles, SIGKILL."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm import data
from sfarm.context import TaskContext
from sfarm.indicators import compute
from sfarm.indicators.task import (
    EXTRA_KEY,
    Job,
    PhaseTimes,
    advance,
    catch_up,
    plan_jobs,
    run_indicators,
)
from sfarm.inventory.model import IndicatorsTask
from tests.fixtures.processes import start_python
from tests.fixtures.series import assert_close
from tests.fixtures.waiting import wait_for

HOUR = 3_600_000
START = 1_699_999_200_000  # on the hour
SPECS = ["sma(20)", "ema(50)", "rsi(14)", "macd(12,26,9)", "bbands(20,2)", "atr(14)", "sar",
         "vwap"]


def candles(n: int, first: int = 0, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(scale=0.01, size=first + n)))[first:]
    spread = rng.random(first + n)[first:] * 0.01
    return pl.DataFrame({
        "ts": START + np.arange(first, first + n, dtype=np.int64) * HOUR,
        "open": close, "high": close * (1 + spread), "low": close * (1 - spread),
        "close": close, "volume": rng.random(first + n)[first:] * 10,
    })


def check_outputs(root: Path, source: pl.DataFrame, mirror_of: str | None = None) -> None:
    """Every output holds exactly the candles' ts and the batch values, with a matching state."""
    for job in plan_jobs("binance", ["BTC/USDT"], ["1h"], SPECS):
        stored = data.read(root, job.output_id)
        assert stored["ts"].to_list() == source["ts"].to_list(), job.output_id
        batch = compute(source, [job.spec.text])
        for column in job.spec.columns:
            assert_close(stored[column].to_numpy(), batch[column].to_numpy(), column)
        manifest = data.load_manifest(root, job.output_id)
        assert manifest is not None
        saved = manifest.extra[EXTRA_KEY]
        assert saved["state"]["last_ts"] == source["ts"][-1]
        assert saved["state"]["rows"] == source.height
        assert data.verify(root, job.output_id).ok


@pytest.fixture
def jobs() -> list:
    return plan_jobs("binance", ["BTC/USDT"], ["1h"], SPECS)


def test_catch_up_then_new_candles(tmp_path: Path, jobs: list) -> None:
    source = candles(700)
    data.append(tmp_path, jobs[0].input_id, source[:500])
    assert catch_up(tmp_path, jobs, max_rows=120) == 500 * len(jobs)
    assert catch_up(tmp_path, jobs) == 0  # nothing new
    data.append(tmp_path, jobs[0].input_id, source[500:])
    assert catch_up(tmp_path, jobs) == 200 * len(jobs)
    check_outputs(tmp_path, source)


def test_jobs_at_different_positions_share_one_read(tmp_path: Path, jobs: list) -> None:
    """Specs added later start from the first candle while the others continue where they are;
    every round reads the candles once, from the earliest position."""
    source = candles(700, seed=4)
    data.append(tmp_path, jobs[0].input_id, source[:400])
    assert catch_up(tmp_path, jobs[:3], max_rows=150) == 400 * 3
    data.append(tmp_path, jobs[0].input_id, source[400:])
    times = PhaseTimes()
    assert catch_up(tmp_path, jobs, max_rows=250, times=times) == 300 * 3 + 700 * (len(jobs) - 3)
    check_outputs(tmp_path, source)
    assert min(times.locate, times.read, times.update, times.write) > 0
    assert times.total >= times.read + times.update + times.write


def test_input_from_a_mirror(tmp_path: Path, jobs: list) -> None:
    source = candles(300, seed=1)
    producer = tmp_path / "producer"
    data.append(producer, jobs[0].input_id, source)
    node = tmp_path / "node"
    shutil.copytree(producer / "data", node / "mirror" / "miner-1")  # as the resolver pulls it
    catch_up(node, jobs)
    check_outputs(node, source)
    assert data.load_manifest(node, jobs[0].output_id) is not None


def test_no_input_yet_is_not_an_error(tmp_path: Path, jobs: list) -> None:
    assert advance(tmp_path, jobs[0]) == 0


def test_engine_wakes_on_new_candles_and_stops(tmp_path: Path, jobs: list) -> None:
    source = candles(400, seed=2)
    data.append(tmp_path, jobs[0].input_id, source[:300])
    context = TaskContext(tmp_path, "indicators", IndicatorsTask(
        kind="indicators", exchange="binance", markets=["BTC/USDT"], timeframes=["1h"],
        indicators=SPECS))
    worker = threading.Thread(target=run_indicators, args=(context,),
                              kwargs={"poll_s": 0.05})
    worker.start()
    try:
        wait_for(lambda: _last_ts(tmp_path, jobs) == source["ts"][299])
        data.append(tmp_path, jobs[0].input_id, source[300:])
        wait_for(lambda: _last_ts(tmp_path, jobs) == source["ts"][-1])
    finally:
        context.stop.set()
        worker.join(10)
    assert not worker.is_alive()
    check_outputs(tmp_path, source)
    assert context.board.outputs[jobs[0].output_id].rows == source.height


def _last_ts(root: Path, jobs: list) -> int | None:
    stamps = set()
    for job in jobs:
        manifest = data.load_manifest(root, job.output_id)
        stamps.add(manifest.last_ts if manifest else None)
    return stamps.pop() if len(stamps) == 1 else None


def _rows(root: Path, job: Job) -> int:
    manifest = data.load_manifest(root, job.output_id, with_partitions=False)
    return 0 if manifest is None else manifest.rows


DRIVER = """
import sys
from pathlib import Path
from sfarm.indicators.task import catch_up, plan_jobs
jobs = plan_jobs("binance", ["BTC/USDT"], ["1h"], {specs})
catch_up(Path(sys.argv[1]), jobs, max_rows=37)
"""


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_consistent_datasets(tmp_path: Path, jobs: list) -> None:
    """Kill the task at random moments, restart it, and end with exactly the batch values.

    Each kill waits for the run to pass a random number of output rows (then up to 50 ms more,
    to land inside a step rather than on a commit): the kills happen mid-run however fast or
    slow the machine is, where a random delay alone let a quick machine finish first.
    """
    source = candles(1500, seed=3)
    data.append(tmp_path, jobs[0].input_id, source)
    script = DRIVER.format(specs=json.dumps(SPECS))
    rng = np.random.default_rng(5)
    # Rows well before the end (steps of 37 rows): the run cannot finish before it passes them.
    thresholds = sorted(int(rows) for rows in rng.choice(np.arange(1, 1300), 6, replace=False))
    kills = 0
    for threshold in thresholds:
        process = start_python(script, str(tmp_path), ready=False)
        wait_for(lambda process=process, threshold=threshold:  # this turn's, bound now
                 _rows(tmp_path, jobs[0]) >= threshold or process.poll() is not None,
                 what=f"{threshold} rows computed")
        time.sleep(float(rng.uniform(0, 0.05)))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        for job in jobs:  # after every kill: rows and state agree, nothing is corrupt
            manifest = data.load_manifest(tmp_path, job.output_id)
            if manifest is None:
                continue
            assert data.verify(tmp_path, job.output_id).ok
            assert manifest.extra[EXTRA_KEY]["state"]["rows"] == manifest.rows
            assert manifest.extra[EXTRA_KEY]["state"]["last_ts"] == manifest.last_ts
    assert kills == len(thresholds)
    assert start_python(script, str(tmp_path), ready=False).wait() == 0
    check_outputs(tmp_path, source)
