"""The `indicators` task: one dataset per (market, timeframe, spec), kept up to date from candles.

Each step reads the candles after the output's last candle, runs `incremental.update` and
appends the rows together with the new state (manifest `extra`, one atomic commit), so a worker
killed at any moment resumes where its last commit left off: no row twice, no row without the
state that produced it. Input candles are this node's own (`data/`) or pulled from their
producer into `mirror/<node>/`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfarm import data
from sfarm.data.ids import candles_id, indicator_id
from sfarm.indicators.incremental import IndicatorState, update
from sfarm.indicators.spec import IndicatorSpec, parse_spec

log = logging.getLogger("sfarm.indicators")

EXTRA_KEY = "indicator"  # manifest extra: {"spec", "input", "state"}
# Bounds memory while building a long history. Large on purpose: the first step reads the state
# off TA-Lib's outputs (C speed), later steps continue the recurrences in Python (~1 us a row).
MAX_ROWS_PER_STEP = 10_000_000
POLL_S = 2.0


@dataclass(frozen=True)
class Job:
    """One output dataset: the indicator `spec` over the candles `input_id`."""

    input_id: str
    output_id: str
    spec: IndicatorSpec


def plan_jobs(exchange: str, markets: Iterable[str], timeframes: Iterable[str],
              indicators: Iterable[str]) -> list[Job]:
    specs = [parse_spec(text) for text in indicators]
    return [Job(candles_id(exchange, market, tf), indicator_id(exchange, market, tf, spec.key),
                spec)
            for market in markets for tf in timeframes for spec in specs]


def locate_input(root: Path, dataset_id: str) -> str | None | bool:
    """Where the candles are: None for this node's data/, a producer node's name for its
    mirror, False when they are nowhere yet."""
    if data.load_manifest(root, dataset_id) is not None:
        return None
    mirror = root / "mirror"
    if mirror.is_dir():
        for node in sorted(p.name for p in mirror.iterdir() if p.is_dir()):
            if data.load_manifest(root, dataset_id, mirror_of=node) is not None:
                return node
    return False


def saved_state(root: Path, job: Job) -> IndicatorState | None:
    manifest = data.load_manifest(root, job.output_id)
    if manifest is None:
        return None
    saved: Any = manifest.extra.get(EXTRA_KEY, {}).get("state")
    if saved is None:
        return None
    try:
        state = IndicatorState.from_json(saved)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("%s: stored state unusable (%s); recomputing from the candles",
                    job.output_id, error)
        return None
    return state if parse_spec(state.spec) == job.spec else None


def advance(root: Path, job: Job, *, max_rows: int = MAX_ROWS_PER_STEP) -> int:
    """Append the indicator rows for the candles not processed yet (at most `max_rows`).

    Returns the number of candles processed (0 when the output is up to date or the input
    does not exist yet).
    """
    source = locate_input(root, job.input_id)
    if source is False:
        return 0
    mirror_of = source if isinstance(source, str) else None
    state = saved_state(root, job)
    start = None if state is None or state.last_ts is None else state.last_ts + 1
    candles = data.read(root, job.input_id, start=start, mirror_of=mirror_of)
    if candles.height == 0:
        return 0
    candles = candles.head(max_rows)
    rows, next_state = update(job.spec, state, candles)
    data.append(root, job.output_id, rows, extra={EXTRA_KEY: {
        "spec": job.spec.text, "input": job.input_id, "state": next_state.to_json()}})
    return candles.height


def catch_up(root: Path, jobs: list[Job], *, max_rows: int = MAX_ROWS_PER_STEP,
             stop: Any = None) -> int:
    """Advance every job until none has new candles (or `stop` is set); candles processed."""
    total = 0
    progressed = True
    while progressed and not (stop is not None and stop.is_set()):
        progressed = False
        for job in jobs:
            done = advance(root, job, max_rows=max_rows)
            total += done
            progressed = progressed or done > 0
    return total


def run_indicators(context: Any, *, poll_s: float = POLL_S) -> None:
    """Worker engine (`sfarm.runtime.worker`): catch up, then wake on new candles until stopped.

    `context.config` is the task's `IndicatorsTask` model; `context.root` its `NodeRoot`.
    """
    config = context.config
    jobs = plan_jobs(config.exchange, config.markets, config.timeframes, config.indicators)
    root = Path(context.root.path)
    board = context.board
    while not context.stop.is_set():
        board.wait_for(None)
        processed = catch_up(root, jobs, stop=context.stop)
        if processed:
            board.count("candles", processed)
        for job in jobs:
            manifest = data.load_manifest(root, job.output_id)
            if manifest is not None:
                board.output(job.output_id, manifest.last_ts, manifest.rows)
        board.wait_for("new candles")
        if context.sleep(poll_s):
            break
