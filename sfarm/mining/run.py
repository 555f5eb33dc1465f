"""Entry points of the miner: `mine` (one-off, used by `sfarm mine`), `run_mine_task` (a `mine`
task until stopped) and `run_mine` (that, as the worker's engine reporting on its board). All
open one async exchange, check the request against its markets before fetching anything, then
run one `DatasetMiner` per market x timeframe concurrently; the exchange's throttler keeps them
all within its rate limit together.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfarm.context import TaskContext
from sfarm.data.ids import candles_id
from sfarm.errors import RunError, SfarmError
from sfarm.exchanges import (
    ExchangeCallError,
    ExchangePermanentError,
    RetryPolicy,
)
from sfarm.exchanges.asynchronous import call_with_retries_async, make_async_exchange
from sfarm.mining.checks import check_markets, check_ohlcv, check_timeframes, page_limit
from sfarm.mining.fetch import (
    DatasetMiner,
    MinerSettings,
    Stopped,
    now_ms,
    sleep_unless_stopped,
)
from sfarm.mining.model import MineProgress, MineRequest, MineResult
from sfarm.tasks import Exchange, MineTask

log = logging.getLogger("sfarm.mining")

ProgressCallback = Callable[[MineProgress], None]
DEFAULT_SETTINGS = MinerSettings()
_CLOCK_RETRY = RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1.0)


def _ignore(_: MineProgress) -> None:
    pass


def _open_exchange(exchange_config: Exchange, timeout_ms: int | None) -> Any:
    # Public candles need no credentials: a miner never loads any (deploy gives a node the
    # credentials of its live trade tasks only).
    return make_async_exchange(exchange_config.ccxt, url=exchange_config.url,
                               sandbox=exchange_config.sandbox, credentials=None,
                               timeout_ms=timeout_ms)


async def _load_markets(exchange: Any, request: MineRequest, settings: MinerSettings,
                        stop: threading.Event) -> None:
    """Load the exchange's markets (retried) and check the request against them."""
    try:
        await call_with_retries_async(
            exchange.load_markets, policy=settings.retry, action="load markets",
            sleep=lambda seconds: sleep_unless_stopped(seconds, stop))
    except ExchangePermanentError as error:
        raise RunError(f"{request.exchange}: {error.message}",
                       hint=error.hint) from error
    check_ohlcv(request.exchange, exchange.has)
    check_markets(request.exchange, request.markets, exchange.markets)
    check_timeframes(request.exchange, request.timeframes, exchange.timeframes)


async def _clock_offset(exchange: Any) -> int:
    """Milliseconds to add to this machine's clock so it is not ahead of the exchange's.

    A candle is stored once closed by the clock; a clock ahead of the exchange's would store a
    candle the exchange still considers open. The offset is measured against the reply's
    arrival (so it errs by up to one round trip towards "ahead"), and only ever negative: a
    clock behind merely stores a candle a moment later. Exchanges without fetchTime: 0.
    """
    if not exchange.has.get("fetchTime"):
        return 0
    try:
        server_ms = await call_with_retries_async(exchange.fetch_time, policy=_CLOCK_RETRY,
                                                  action="fetch time")
    except ExchangeCallError as error:  # a missing clock check must not stop the mining
        log.info("%s: cannot read the exchange's clock (%s); trusting this one", exchange.id,
                 error.message)
        return 0
    if server_ms is None:
        return 0
    offset = min(0, int(server_ms) - now_ms())
    if offset < -1_000:
        log.warning("%s: this machine's clock is %.1f s ahead of the exchange's; candles are "
                    "judged closed by the exchange's clock", exchange.id, -offset / 1000)
    return offset


def _check_static(exchange: Any, request: MineRequest) -> None:
    # ccxt declares most exchanges' timeframes and capabilities statically: check them before
    # the first request, so a wrong timeframe fails at once, even with the exchange unreachable.
    check_ohlcv(request.exchange, exchange.has)
    check_timeframes(request.exchange, request.timeframes, exchange.timeframes)


async def mine_async(root: Path, request: MineRequest, exchange_config: Exchange, *,
                     stop: threading.Event, on_progress: ProgressCallback = _ignore,
                     settings: MinerSettings = DEFAULT_SETTINGS, timeout_ms: int | None = None,
                     limit: int | None = None) -> MineResult:
    """Mine `request` into `root` (see `mine`); the coroutine behind it."""
    progress = [MineProgress(candles_id(request.exchange, market, tf), market, tf)
                for market in request.markets for tf in request.timeframes]
    exchange = _open_exchange(exchange_config, timeout_ms)
    try:
        _check_static(exchange, request)
        try:
            await _load_markets(exchange, request, settings, stop)
        except Stopped:
            for p in progress:
                p.phase = "stopped"
            return MineResult(progress)
        offset = await _clock_offset(exchange)
        miners = [
            DatasetMiner(root=root, exchange=exchange, progress=p, since_ms=request.since_ms,
                         until_ms=request.until_ms, stop=stop, report=on_progress,
                         limit=limit or page_limit(exchange.features, exchange.market(p.market)),
                         settings=settings, clock=lambda: now_ms() + offset)
            for p in progress
        ]
        try:
            # One failing for good (bad symbol, keys) stops the others: the task is misconfigured.
            async with asyncio.TaskGroup() as group:
                for miner in miners:
                    group.create_task(miner.run(follow=request.follow))
        except BaseExceptionGroup as errors:
            first = next((e for e in errors.exceptions if isinstance(e, SfarmError)),
                         errors.exceptions[0])
            raise first from None
    except ExchangeCallError as error:
        raise RunError(f"{request.exchange}: {error.message}", hint=error.hint) from error
    finally:
        await exchange.close()
    return MineResult(progress)


def mine(root: Path | str, request: MineRequest, exchange_config: Exchange, *,
         stop: threading.Event | None = None, on_progress: ProgressCallback = _ignore,
         settings: MinerSettings = DEFAULT_SETTINGS, timeout_ms: int | None = None,
         limit: int | None = None) -> MineResult:
    """Download the candles of `request` into the store under `root`.

    Resumes every dataset from its manifest, stores closed candles only, records exchange-side
    gaps in the manifest's `extra["exchange_gaps"]`. With `request.follow` it keeps fetching
    each candle as it closes until `stop` is set (or `until` is reached).

    Raises UsageError when the exchange, a market or a timeframe is wrong (before fetching
    anything) and RunError when the exchange refuses for good; a dataset whose temporary
    errors outlast the retries ends with phase "failed" in the result.

    Example:
        >>> mine("/tmp/node", MineRequest("binance", ("BTC/USDT",), ("1h",), since_ms=...),
        ...      Exchange(ccxt="binance", url="http://127.0.0.1:8900"))  # doctest: +SKIP
    """
    return asyncio.run(mine_async(
        Path(root), request, exchange_config, stop=stop or threading.Event(),
        on_progress=on_progress, settings=settings, timeout_ms=timeout_ms, limit=limit))


def request_for_task(task: MineTask, now: int | None = None, *,
                     follow: bool = True) -> MineRequest:
    """The request a `mine` task makes now (`since`/`until` may be relative to now)."""
    now = now_ms() if now is None else now
    return MineRequest(
        exchange=task.exchange, markets=tuple(task.markets), timeframes=tuple(task.timeframes),
        since_ms=task.since.resolve(now),
        until_ms=task.until.resolve(now) if task.until is not None else None, follow=follow)


def run_mine_task(root: Path | str, task_name: str, task: MineTask, exchange_config: Exchange,
                  *, stop_event: threading.Event,
                  on_progress: ProgressCallback = _ignore,
                  settings: MinerSettings = DEFAULT_SETTINGS) -> MineResult:
    """The engine of a `mine` task: backfill every dataset, then follow the live edge until
    `stop_event` is set (or the task's `until` is reached). Returns what was done.

    Temporary exchange trouble never ends it (each dataset pauses and goes on); a
    misconfiguration (unknown market or timeframe: UsageError; bad keys: RunError) does.
    """
    request = request_for_task(task, follow=True)
    log.info("task %s: mining %s from %s (%d datasets)", task_name, task.exchange,
             task.since, len(request.dataset_ids()))
    return mine(root, request, exchange_config, stop=stop_event, on_progress=on_progress,
                settings=settings)



def run_mine(context: TaskContext[MineTask], exchange_config: Exchange, *,
             settings: MinerSettings = DEFAULT_SETTINGS) -> None:
    """Worker engine of a `mine` task: `run_mine_task` with its progress on `context.board`
    (each dataset as an output; candles added, requests and retries summed over them).

    Raises RunError when a dataset failed for good, unless the worker was asked to stop."""
    latest: dict[str, MineProgress] = {}
    board = context.board

    def report(progress: MineProgress) -> None:
        latest[progress.dataset_id] = progress
        board.output(progress.dataset_id, progress.last_ts, progress.rows)
        board.set_counters({
            "candles_added": sum(p.rows_added for p in latest.values()),
            "requests": sum(p.requests for p in latest.values()),
            "retries": sum(p.retries for p in latest.values()),
            "bad_candles": sum(p.bad_candles for p in latest.values()),
        })
        if progress.error or progress.exchange_problem:
            board.error(progress.error or progress.exchange_problem)

    result = run_mine_task(context.root, context.task, context.config, exchange_config,
                           stop_event=context.stop, on_progress=report, settings=settings)
    if result.failures and not context.stop.is_set():
        failed = "; ".join(f"{p.dataset_id}: {p.error}" for p in result.failures)
        raise RunError(f"mining failed: {failed}")
