"""The fetch loop of one market x timeframe: backfill page by page, then follow the live edge.

Each page is appended as soon as it arrives (with the exchange-side gaps it proves, in the same
atomic append), so a stop loses at most the request in flight and a crash at most two pages
(the one being appended and the next one fetched meanwhile); the next run resumes from the
manifest, and first fetches every hole the index shows between `since` and the last candle (a
stop while filling one, a repair's loss, an earlier `since`). Decisions about a page live in
`sfarm.mining.windows`; this module does the I/O: ccxt requests (async, retried), store appends
(in a thread, so requests go on meanwhile) and sleeps that end early when a stop is requested.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from sfarm import data
from sfarm.data.checks import bad_candle_expr
from sfarm.errors import RunError
from sfarm.exchanges import ExchangePermanentError, ExchangeTemporaryError, RetryPolicy
from sfarm.exchanges.asynchronous import call_with_retries_async
from sfarm.mining.model import MineProgress
from sfarm.mining.refused import RefusedCandles
from sfarm.mining.windows import (
    OffGridCandle,
    PageDecision,
    decide_page,
    fetch_end,
    first_open,
    merge_gaps,
    next_wake,
    resume_open,
)
from sfarm.timeframes import timeframe_ms

log = logging.getLogger("sfarm.mining")
T = TypeVar("T")

CANDLE_SCHEMA = {"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
                 "close": pl.Float64, "volume": pl.Float64}
_STOP_POLL_S = 0.1  # how often a sleeping or waiting miner looks at the stop flag


class Stopped(Exception):
    """A stop was requested; the miner leaves between two steps (never inside an append)."""


def now_ms() -> int:
    return int(time.time() * 1000)


async def sleep_unless_stopped(seconds: float, stop: threading.Event) -> None:
    """Sleep `seconds`, raising Stopped as soon as `stop` is set."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        if stop.is_set():
            raise Stopped()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, _STOP_POLL_S))


async def unless_stopped(work: Awaitable[T], stop: threading.Event) -> T:
    """Await `work`, abandoning it (cancelled) when `stop` is set first: a stop does not wait
    for a slow reply."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=_STOP_POLL_S)
        if done:
            return task.result()
        if stop.is_set():
            task.cancel()
            raise Stopped()


# Up to ~1 min of retries per request: outlasts a 429 burst or a load balancer hiccup.
MINING_RETRY = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=30.0)


@dataclass(frozen=True)
class MinerSettings:
    """How a miner paces itself. Defaults suit a real exchange; tests shorten them."""

    retry: RetryPolicy = MINING_RETRY
    close_delay_ms: int = 1_500  # wait after a candle closes before asking for it
    poll_ms: int = 5_000  # first re-poll interval while the exchange lags behind the clock
    failure_pause_s: float = 30.0  # live mode: pause after retries ran out, then go on
    # Live mode: look for holes again this often (a fill cut short by an outage, candles the
    # exchange served broken, a day lost and repaired), and fetch them; at start, always.
    holes_recheck_s: float = 3_600.0


class DatasetMiner:
    """Mines one candles dataset from an async ccxt exchange (shared with other miners)."""

    def __init__(self, *, root: Path, exchange: Any, progress: MineProgress, since_ms: int,
                 until_ms: int | None, limit: int, settings: MinerSettings,
                 stop: threading.Event, report: Callable[[MineProgress], None],
                 clock: Callable[[], int] = now_ms) -> None:
        self.root = root
        self.exchange = exchange
        self.progress = progress
        self.since_ms = since_ms
        self.until_ms = until_ms
        self.limit = limit
        self.settings = settings
        self.stop = stop
        self.report = report
        self.clock = clock
        self.has_history = False
        self.refused = RefusedCandles(progress.dataset_id, exchange.id)  # this run
        self.holes: list[tuple[int, int]] = []  # [first missing, next stored) before the resume

    # ---- state ---------------------------------------------------------------------------------

    def load_state(self) -> None:
        """Resume point, rows, recorded gaps and the holes to fetch, from the dataset's index."""
        p = self.progress
        manifest = data.load_manifest(self.root, p.dataset_id, with_partitions=False)
        last_ts = manifest.last_ts if manifest else None
        self.has_history = last_ts is not None
        if manifest is not None:
            p.rows, p.first_ts, p.last_ts = manifest.rows, manifest.first_ts, manifest.last_ts
            p.exchange_gaps = merge_gaps(_valid_gaps(manifest.extra.get("exchange_gaps")))
        self.find_holes()
        p.start_open = p.next_open = resume_open(self.since_ms, p.timeframe, last_ts)
        p.end_open = fetch_end(self.clock(), p.timeframe, self.until_ms)

    def find_holes(self) -> None:
        """The holes to fetch behind the resume point: whatever is missing since `since` (a
        fill cut short, a repair's loss, an earlier `since`, candles refused as impossible),
        less what the exchange itself lacks."""
        p = self.progress
        holes = data.find_holes(self.root, p.dataset_id, first_open(self.since_ms, p.timeframe),
                                excused=p.exchange_gaps) if p.last_ts is not None else []
        self.holes = [(start, min(end, self._until_open)) for start, end in holes
                      if start < self._until_open]
        if self.holes:
            step = timeframe_ms(p.timeframe)
            log.info("%s: %d candles missing in %d holes before %s; fetching them",
                     p.dataset_id, sum((end - start) // step for start, end in self.holes),
                     len(self.holes), data.format_ts(p.last_ts))

    @property
    def _until_open(self) -> int:
        """Exclusive bound on the opens this run may store (none: no bound)."""
        if self.until_ms is None:
            return 2**63 - 1
        return first_open(self.until_ms, self.progress.timeframe)

    @property
    def until_reached(self) -> bool:
        return (self.until_ms is not None
                and self.progress.next_open >= first_open(self.until_ms, self.progress.timeframe))

    # ---- one page ------------------------------------------------------------------------------

    async def fetch_page(self) -> PageDecision:
        """Ask for the next page and decide what of it to store (the caller stores it)."""
        p = self.progress
        asked_at = self.clock()  # before the request: a candle closed then is closed for sure
        end = fetch_end(asked_at, p.timeframe, self.until_ms)
        p.end_open = max(end, p.start_open)
        if p.next_open >= end:
            return PageDecision([], [], p.next_open, True)
        page = await self.request_page(p.next_open)
        decision = self.decide(page, p.next_open, end, has_history=self.has_history)
        if decision.rows:
            self.has_history = True
        p.next_open = decision.next_open
        return decision

    async def request_page(self, since: int) -> list[Any]:
        """One page of candles from `since` on (retried; a stop abandons it, never an append)."""
        p = self.progress
        p.requests += 1
        page: list[Any] = await unless_stopped(call_with_retries_async(
            self.exchange.fetch_ohlcv, p.market, p.timeframe, since, self.limit,
            policy=self.settings.retry, action=f"fetch {p.market} {p.timeframe} candles",
            on_retry=self._count_retry,
            sleep=lambda seconds: sleep_unless_stopped(seconds, self.stop)), self.stop)
        return page

    def decide(self, page: list[Any], expected: int, end: int, *,
               has_history: bool) -> PageDecision:
        p = self.progress
        try:
            decision = decide_page(page, expected, end, p.timeframe, has_history=has_history)
        except OffGridCandle as error:
            raise RunError(f"{p.dataset_id}: {self.exchange.id} returned a candle opening at "
                           f"{data.format_ts(error.ts)}, off sfarm's {p.timeframe} grid",
                           hint="this exchange aligns its candles differently; use another "
                                "timeframe") from None
        # Hole filling and forward pages alike store no impossible candle.
        return self._refuse_bad_candles(decision)

    def _refuse_bad_candles(self, decision: PageDecision) -> PageDecision:
        """The page without the candles `sfarm.data.checks` calls impossible (a price of zero,
        NaN, a negative volume...): an exchange problem, counted and described on the progress.
        Their slots stay empty, not recorded as exchange-side gaps (the exchange has candles
        there, only broken ones): `verify` reports the hole, so it can be mined again once the
        exchange has corrected its data."""
        if not decision.rows:
            return decision
        frame = pl.DataFrame(decision.rows, schema=CANDLE_SCHEMA, orient="row")
        refused = frame.select(bad_candle_expr()).to_series().to_list()
        if not any(refused):
            return decision
        p = self.progress
        if self.refused.add(frame.filter(pl.Series(refused))):
            p.bad_candles = self.refused.count
            p.exchange_problem = self.refused.text()
            # info: a worker's log keeps it, its heartbeat's last_error shows it, `sfarm mine`
            # prints it once after its summary (a warning would also reach the terminal now).
            log.info("%s", p.exchange_problem)
        kept = [row for row, bad_row in zip(decision.rows, refused, strict=True) if not bad_row]
        return replace(decision, rows=kept)

    def _count_retry(self, attempt: int, error: ExchangeTemporaryError, delay: float) -> None:
        self.progress.retries += 1

    async def store(self, decision: PageDecision) -> None:
        p = self.progress
        frame = pl.DataFrame(decision.rows, schema=CANDLE_SCHEMA, orient="row")
        extra = None
        if decision.gaps:
            gaps = merge_gaps([*p.exchange_gaps, *decision.gaps])
            extra = {"exchange_gaps": gaps}
            for start, end in decision.gaps:
                log.info("%s: exchange has no candles from %s to before %s; recorded as an "
                         "exchange-side gap", p.dataset_id, data.format_ts(start),
                         data.format_ts(end))
        # In a thread, so other markets keep fetching while Parquet is written.
        result = await asyncio.to_thread(data.append, self.root, p.dataset_id, frame,
                                         extra=extra)
        if extra is not None:
            p.exchange_gaps = extra["exchange_gaps"]
        if result.conflicts:
            log.warning("%s: %d candles differ from the stored ones (stored values kept)",
                        p.dataset_id, result.conflicts)
        p.rows_added += result.rows_added
        p.candles_received += len(decision.rows)
        p.rows += result.rows_added
        first = int(decision.rows[0][0])
        p.first_ts = first if p.first_ts is None else min(p.first_ts, first)
        p.last_ts = result.last_ts

    # ---- loops ---------------------------------------------------------------------------------

    async def catch_up(self) -> bool:
        """Fetch pages until nothing more is available now; True when caught up with the end.

        Pipelined one page deep: the next request goes out while the previous page is being
        appended (appends stay in order, one at a time). Whatever ends the loop, the append in
        progress is finished first.
        """
        pending: asyncio.Future[None] | None = None
        try:
            while True:
                if self.stop.is_set():
                    raise Stopped()
                decision = await self.fetch_page()
                if pending is not None:
                    await pending
                    pending = None
                    self.report(self.progress)
                if decision.rows:
                    pending = asyncio.ensure_future(self.store(decision))
                if decision.exhausted:
                    break
        finally:
            if pending is not None:
                await pending
        self.report(self.progress)
        return self.progress.next_open >= self.progress.end_open

    async def fill_holes(self, *, follow: bool) -> None:
        """Fetch the holes `find_holes` found. Following, temporary exchange trouble leaves the
        rest to the next look for holes (the live edge comes first); a one-off run fails as
        usual."""
        if not self.holes:
            return
        p = self.progress
        p.phase = "backfill"
        self.report(p)
        for start, end in self.holes:
            try:
                await self.fill_hole(start, end)
            except ExchangeTemporaryError as error:
                if not follow:
                    raise
                log.warning("%s: %s; the holes left are asked for again later",
                            p.dataset_id, error.message)
                return

    async def fill_hole(self, start: int, end: int) -> None:
        """Fetch [start, end), `end` the open of the stored candle after the hole, asking up to
        that candle: a reply that jumps to it proves the exchange has nothing before it (an
        exchange-side gap, recorded, so the next run does not ask again). A hole cut short by
        `until` ends there, unproven."""
        p = self.progress
        bound = min(end + timeframe_ms(p.timeframe), self._until_open)
        expected = start
        while expected < end:
            if self.stop.is_set():
                raise Stopped()
            page = await self.request_page(expected)
            decision = self.decide(page, expected, bound, has_history=True)
            if not decision.rows:
                log.info("%s: the exchange has no candles from %s to %s; the next run asks "
                         "again", p.dataset_id, data.format_ts(expected), data.format_ts(end))
                return
            await self.store(decision)
            self.report(p)
            expected = decision.next_open

    async def backfill(self) -> None:
        """Download everything closed (before `until`) once, then return."""
        self.progress.phase = "backfill"
        self.report(self.progress)
        await self.catch_up()

    async def follow(self) -> None:
        """Backfill, then fetch each candle right after it closes, until stopped or `until`."""
        p = self.progress
        p.phase = "backfill"
        self.report(self.progress)
        idle_polls = 0
        holes_due = time.monotonic() + self.settings.holes_recheck_s
        while not self.until_reached:
            before = p.next_open
            try:
                caught_up = await self.catch_up()
            except ExchangeTemporaryError as error:
                # A daemon outlives outages: say so, pause, go on where it stopped.
                p.error = error.message
                log.warning("%s: %s; trying again in %.0f s", p.dataset_id, error.message,
                            self.settings.failure_pause_s)
                self.report(p)
                await sleep_unless_stopped(self.settings.failure_pause_s, self.stop)
                continue
            p.error = None
            if self.until_reached:
                break
            if caught_up and time.monotonic() >= holes_due:
                await asyncio.to_thread(self.find_holes)
                await self.fill_holes(follow=True)
                holes_due = time.monotonic() + self.settings.holes_recheck_s
            p.phase = "live"
            idle_polls = 0 if caught_up or p.next_open > before else idle_polls + 1
            now = self.clock()
            wake = next_wake(now, p.timeframe, self.settings.close_delay_ms,
                             caught_up=caught_up, idle_polls=idle_polls,
                             poll_ms=self.settings.poll_ms)
            self.report(p)
            sleep_s = (wake - now) / 1000
            if caught_up:  # holes due before the next candle closes need not wait for it
                sleep_s = min(sleep_s, max(0.0, holes_due - time.monotonic()))
            await sleep_unless_stopped(sleep_s, self.stop)

    async def run(self, *, follow: bool) -> MineProgress:
        """Mine until done or stopped. Temporary failures that outlast the retries fail this
        dataset only (one-off runs); permanent ones (bad symbol, keys) are raised."""
        p = self.progress
        try:
            await asyncio.to_thread(self.load_state)
            await self.fill_holes(follow=follow)
            await (self.follow() if follow else self.backfill())
            p.phase = "done"
        except Stopped:
            p.phase = "stopped"
        except ExchangeTemporaryError as error:
            p.phase, p.error = "failed", error.message
            log.error("%s: %s", p.dataset_id, error.message)
        except ExchangePermanentError as error:
            p.phase, p.error = "failed", error.message
            self.report(p)
            raise RunError(f"{p.dataset_id}: {error.message}", hint=error.hint) from error
        self.report(p)
        return p


def _valid_gaps(value: object) -> list[list[int]]:
    """Recorded gaps as int pairs; anything else is left for `verify` to complain about."""
    if not isinstance(value, list):
        return []
    return [[int(item[0]), int(item[1])] for item in value
            if isinstance(item, list | tuple) and len(item) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item)]
