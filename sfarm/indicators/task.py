"""The `indicators` task: one dataset per (market, timeframe, spec), kept up to date from candles.

Each step reads the candles after the output's last candle (once for all the specs over the
same candles, only the columns they use), runs `incremental.update` and appends the rows
together with the new state (manifest `extra`, one atomic commit per dataset; the datasets
over one input commit as a group, `data.append_many`, sharing their fsyncs), so a worker
killed at any moment resumes where its last commit left off: no row twice, no row without the
state that produced it. Input candles are this node's own (`data/`) or pulled from their
producer into `mirror/<node>/`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sfarm import data
from sfarm.context import ProgressBoard, TaskContext
from sfarm.data.ids import candles_id, indicator_id
from sfarm.indicators.incremental import IndicatorState, update
from sfarm.indicators.spec import IndicatorSpec, parse_spec
from sfarm.tasks import IndicatorsTask

log = logging.getLogger("sfarm.indicators")

EXTRA_KEY = "indicator"  # manifest extra: {"spec", "input", "state"}
# Bounds memory while building a long history. Large on purpose: the first step reads the state
# off TA-Lib's outputs (C speed), later steps continue the recurrences in Python (~1 us a row).
MAX_ROWS_PER_STEP = 10_000_000
POLL_S = 2.0
# Rows gathered for one group commit at most. A live step (a few candles for each job) commits
# all its jobs together, sharing the fsyncs that are most of its cost; a catch-up commits job by
# job, as its fsyncs are a small part of the cost and six 1e7-row outputs would hold 1.3 GB.
GROUP_ROWS = 100_000


@dataclass(frozen=True)
class Job:
    """One output dataset: the indicator `spec` over the candles `input_id`."""

    input_id: str
    output_id: str
    spec: IndicatorSpec


@dataclass
class PhaseTimes:
    """Wall seconds `advance` spent per phase, summed over every call it was given to."""

    locate: float = 0.0  # manifests: where the input is, the saved state
    read: float = 0.0  # the new candles
    update: float = 0.0  # indicator rows and the next state (`incremental.update`)
    encode: float = 0.0  # the state as JSON for the manifest
    write: float = 0.0  # `data.append_many`: rows and state, one commit per dataset

    @property
    def total(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self))


class _Laps:
    """Adds the time since the previous lap to a phase of `times` (no-op without `times`)."""

    def __init__(self, times: PhaseTimes | None) -> None:
        self.times = times
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.times is not None:
            now = time.perf_counter()
            setattr(self.times, phase, getattr(self.times, phase) + now - self.last)
            self.last = now


def plan_jobs(exchange: str, markets: Iterable[str], timeframes: Iterable[str],
              indicators: Iterable[str]) -> list[Job]:
    specs = [parse_spec(text) for text in indicators]
    return [Job(candles_id(exchange, market, tf), indicator_id(exchange, market, tf, spec.key),
                spec)
            for market in markets for tf in timeframes for spec in specs]


def saved_state(root: Path, job: Job) -> IndicatorState | None:
    manifest = data.load_manifest(root, job.output_id, with_partitions=False)
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


def advance(root: Path, job: Job, *, max_rows: int = MAX_ROWS_PER_STEP,
            times: PhaseTimes | None = None) -> int:
    """Append the indicator rows for the candles not processed yet (at most `max_rows`).

    Returns the number of candles processed (0 when the output is up to date or the input
    does not exist yet). `times`, if given, accumulates where the time went.
    """
    return advance_all(root, [job], max_rows=max_rows, times=times)


def advance_all(root: Path, jobs: Iterable[Job], *, max_rows: int = MAX_ROWS_PER_STEP,
                times: PhaseTimes | None = None) -> int:
    """`advance` every job once, reading the new candles of each input once for all its jobs.

    Returns the candles processed, summed over the jobs.
    """
    laps = _Laps(times)
    by_input: dict[str, list[Job]] = {}
    for job in {job.output_id: job for job in jobs}.values():  # one step per output
        by_input.setdefault(job.input_id, []).append(job)
    processed = 0
    for input_id, group in by_input.items():
        source = data.locate(root, input_id)
        if source is None:
            continue
        states = [saved_state(root, job) for job in group]
        starts = [None if state is None or state.last_ts is None else state.last_ts + 1
                  for state in states]
        earliest = None if None in starts else min(s for s in starts if s is not None)
        columns = sorted({name for job in group for name in job.spec.inputs})
        laps.lap("locate")
        candles = data.read(root, input_id, start=earliest, columns=columns,
                            mirror_of=source.node)
        laps.lap("read")
        appends: list[data.Append] = []
        for job, state, start in zip(group, states, starts, strict=True):
            new = _from(candles, start).head(max_rows)
            if new.height:
                appends.append(_step(job, state, new, laps))
                processed += new.height
            if sum(item.frame.height for item in appends) >= GROUP_ROWS:
                _commit(root, appends, laps)
        _commit(root, appends, laps)
    return processed


def _commit(root: Path, appends: list[data.Append], laps: _Laps) -> None:
    """Commit the gathered appends as one group (each dataset its own atomic commit, their
    fsyncs made together), and forget them."""
    if appends:
        data.append_many(root, appends)
        appends.clear()
        laps.lap("write")


def _from(candles: pl.DataFrame, start: int | None) -> pl.DataFrame:
    """The candles at or after `start` (ms); `candles` are sorted by ts."""
    if start is None or candles.height == 0 or candles["ts"][0] >= start:
        return candles
    return candles.slice(int(np.searchsorted(candles["ts"].to_numpy(), start)))


def _step(job: Job, state: IndicatorState | None, candles: pl.DataFrame,
          laps: _Laps) -> data.Append:
    """`job`'s rows for `candles` with the next state, to commit together."""
    rows, next_state = update(job.spec, state, candles)
    laps.lap("update")
    extra = {EXTRA_KEY: {"spec": job.spec.text, "input": job.input_id,
                         "state": next_state.to_json()}}
    laps.lap("encode")
    return data.Append(job.output_id, rows, extra)


def catch_up(root: Path, jobs: list[Job], *, max_rows: int = MAX_ROWS_PER_STEP,
             stop: Any = None, times: PhaseTimes | None = None) -> int:
    """Advance every job until none has new candles (or `stop` is set); candles processed."""
    total = 0
    while not (stop is not None and stop.is_set()):
        done = advance_all(root, jobs, max_rows=max_rows, times=times)
        if done == 0:
            break
        total += done
    return total


def _report_inputs(root: Path, jobs: list[Job], board: ProgressBoard) -> None:
    """Input freshness for the heartbeat: each candles dataset's last candle and rows."""
    for input_id in dict.fromkeys(job.input_id for job in jobs):
        source = data.locate(root, input_id)
        if source is None:
            continue
        manifest = data.load_manifest(root, input_id, mirror_of=source.node,
                                      with_partitions=False)
        if manifest is not None:
            board.input(input_id, manifest.last_ts, manifest.rows)


def run_indicators(context: TaskContext[IndicatorsTask], *, poll_s: float = POLL_S) -> None:
    """Worker engine of an `indicators` task: catch up, then wake on new candles until stopped."""
    config = context.config
    jobs = plan_jobs(config.exchange, config.markets, config.timeframes, config.indicators)
    root = context.root
    board = context.board
    inputs = list(dict.fromkeys(job.input_id for job in jobs))
    while not context.stop.is_set():
        board.wait_for(None)
        processed = catch_up(root, jobs, stop=context.stop)
        if processed:
            board.count("candles", processed)
        for job in jobs:
            manifest = data.load_manifest(root, job.output_id)
            if manifest is not None:
                board.output(job.output_id, manifest.last_ts, manifest.rows)
        _report_inputs(root, jobs, board)
        board.wait_for("new candles")
        if context.sleep_until_commit(inputs, poll_s):
            break
