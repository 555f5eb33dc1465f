"""The `trade` task as a worker engine: backtest, paper or live, until the worker is stopped.

* backtest: runs over `since..until` (the first run fixes `since`, so a relative `3d` does not
  move), writes `sessions/<task>/{trades,equity}` with `write_session`'s rows, then re-runs
  whenever the candles grow and appends only the new rows: a backtest is causal, so a longer
  run repeats the earlier rows exactly. Once the candles reach `until` it is final and idles.
  (Re-running beats stopping: a farm's backtest task then always shows the current history,
  and an engine that returned would be restarted by supervisord anyway.)
* paper: `sfarm.trading.paper.PaperSession`, a step per poll.
* live: `sfarm.trading.live.LiveSession` (orders on the exchange; only while armed by `--live`).

Paper and live run in the one session loop of `sfarm.trading.loop`. Inputs that do not exist yet
are waited for and named on the board (`waiting_for`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from sfarm import data
from sfarm.context import TaskContext
from sfarm.data.ids import session_id
from sfarm.data.layout import format_ts
from sfarm.errors import RunError, UsageError
from sfarm.tasks import Exchange, TradeTask
from sfarm.timeframes import timeframe_ms
from sfarm.trading.backtest import BacktestResult, run_backtest, session_frames
from sfarm.trading.feed import Feed, WaitingFor
from sfarm.trading.live_guard import HINT, is_armed
from sfarm.trading.loop import Hold, run_session_loop
from sfarm.trading.paper import PaperSession, SessionConfig
from sfarm.trading.session import RiskLimits, report_session
from sfarm.trading.strategy import Strategy, load_strategy

if TYPE_CHECKING:  # ccxt is imported by live workers only
    from sfarm.trading.broker import Broker
    from sfarm.trading.live import LiveSession

log = logging.getLogger("sfarm.trading")

POLL_S = 1.0
BACKTEST_EXTRA = "backtest_task"  # sessions/<task>/state extra: {"start", "last_ts"}


def session_config(task_name: str, task: TradeTask, now_ms: int | None = None,
                   produced: Collection[str] = ()) -> SessionConfig:
    """The task's session settings with its time points resolved now; `produced`: the
    indicator datasets tasks of the network produce (the session reads them)."""
    return SessionConfig(produced=frozenset(produced),
        task=task_name, exchange=task.exchange, market=task.market, timeframe=task.timeframe,
        cash=task.cash, since=task.since.resolve(now_ms) if task.since else None,
        until=task.until.resolve(now_ms) if task.until else None,
        limits=RiskLimits(task.max_drawdown, task.max_daily_loss))


def run_trade_task(context: TaskContext[TradeTask], *, strategy_path: Path,
                   exchange: Exchange, produced: Collection[str] = (),
                   poll_s: float = POLL_S) -> None:
    """Worker engine of a `trade` task, in the task's mode; `produced` as `session_config`."""
    task = context.config
    strategy = load_strategy(strategy_path)
    config = session_config(context.task, task, produced=produced)
    if task.mode == "backtest":
        run_backtest_mode(context, config, strategy, poll_s=poll_s)
    elif task.mode == "paper":
        run_paper_mode(context, config, strategy, poll_s=poll_s)
    else:
        run_live_mode(context, config, strategy, exchange, poll_s=poll_s)


def run_paper_mode(context: TaskContext[TradeTask], config: SessionConfig, strategy: Strategy,
                   *, poll_s: float = POLL_S) -> None:
    """Worker engine of a paper `trade` task."""
    run_session_loop(context, lambda: PaperSession.open(context.root, config, strategy),
                     cash=config.cash, poll_s=poll_s)


# ---- backtest mode ------------------------------------------------------------------------

def run_backtest_mode(context: TaskContext[TradeTask], config: SessionConfig,
                      strategy: Strategy, *, poll_s: float = POLL_S) -> None:
    """Worker engine of a backtest `trade` task (its own loop: no session, a run per turn)."""
    root = context.root
    board = context.board
    feed = Feed(root, strategy, exchange=config.exchange, market=config.market,
                timeframe=config.timeframe, produced=config.produced)
    while not context.stop.is_set():
        try:
            result = backtest_step(root, context.task, feed, config, strategy)
            board.wait_for(None if result else "new candles")
        except WaitingFor as missing:
            board.wait_for(str(missing))
            result = None
        if result is not None:
            board.count("runs")
            state = result.run.state
            report_session(board, root, context.task, float(result.run.equity[-1]),
                           state.position, config.cash)
        if backtest_done(root, context.task, config):
            board.wait_for(None)
        if context.sleep(poll_s):
            break


def backtest_step(root: Path, task: str, feed: Feed, config: SessionConfig,
                  strategy: Strategy) -> BacktestResult | None:
    """Backtest again when the candles grew since the last run; append the new rows."""
    last = feed.last_candle_ts()
    if last is None:
        raise WaitingFor(feed.candles_id)
    saved = _backtest_bookkeeping(root, task)
    rules = strategy_digest(strategy)
    if saved.get("strategy", rules) != rules:
        # The stored rows are another strategy's: appending would mix two backtests.
        raise RunError(f"sessions/{task} holds a backtest of another version of strategy "
                       f"{strategy.name!r}",
                       hint=f"remove {root / 'data' / 'sessions' / task} to run it again, or "
                            "give the task another name")
    if saved.get("last_ts") == last or backtest_done(root, task, config):
        return None
    start = saved.get("start", config.since)
    frame, sources = feed.history(start, config.until)
    if start is None:
        if frame.height == 0:
            raise WaitingFor(feed.candles_id)
        start = int(frame["ts"][0])
    if frame.filter(pl.col("ts") >= start).height == 0:
        raise WaitingFor(f"{feed.candles_id} from {start}")
    result = run_backtest(frame, strategy, timeframe=config.timeframe, cash=config.cash,
                          start=start, dataset_id=feed.candles_id)
    append_backtest(root, task, result, sources)
    data.append(root, session_id(task, "state"), pl.DataFrame(), extra={BACKTEST_EXTRA: {
        "start": start, "last_ts": last, "run_to": int(result.ts[-1]), "strategy": rules}})
    log.info("%s: backtest %s..%s: %d trades, final equity %.2f", task, format_ts(start),
             format_ts(int(result.ts[-1])), result.run.trades.height,
             result.metrics.final_equity)
    for warning in result.warnings:  # a strategy that never warmed up, a constant condition
        log.warning("%s: %s", task, warning)
    return result


def append_backtest(root: Path, task: str, result: BacktestResult,
                    sources: dict[str, str]) -> None:
    """Append the rows after what `sessions/<task>/{trades,equity}` hold (earlier rows of a
    longer run are the same rows) with the run's report in the manifests' extra."""
    trades, equity = session_frames(result)
    summary = {"strategy": result.strategy, "dataset": result.dataset_id,
               "indicators": sources, "metrics": result.metrics.to_json()}
    for part, rows in (("trades", trades), ("equity", equity)):
        dataset = session_id(task, part)
        manifest = data.load_manifest(root, dataset, with_partitions=False)
        if manifest is not None and manifest.last_ts is not None:
            rows = rows.filter(pl.col("ts") > manifest.last_ts)
        data.append(root, dataset, rows if rows.height else pl.DataFrame(),
                    extra={"backtest": summary})


def strategy_digest(strategy: Strategy) -> str:
    """What a backtest's rows depend on in the strategy, as a short digest."""
    text = strategy.model_dump_json(by_alias=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def backtest_done(root: Path, task: str, config: SessionConfig) -> bool:
    """True once a run reached the last candle before `until`."""
    if config.until is None:
        return False
    run_to = _backtest_bookkeeping(root, task).get("run_to")
    return run_to is not None and run_to + timeframe_ms(config.timeframe) >= config.until


def _backtest_bookkeeping(root: Path, task: str) -> dict[str, Any]:
    manifest = data.load_manifest(root, session_id(task, "state"), with_partitions=False)
    if manifest is None:
        return {}
    saved = manifest.extra.get(BACKTEST_EXTRA)
    return dict(saved) if isinstance(saved, dict) else {}


# ---- live mode ----------------------------------------------------------------------------

def make_broker(exchange: Exchange, market: str, secrets_file: Path | None, *,
                name: str = "") -> Broker:
    """A broker for `market` with the exchange's credentials (never logged: ccxt's logger
    redacts them and they are never part of a message). An emulated exchange (`name` in the
    inventory) trades with the account deploy keeps beside `secrets_file` for the node's
    emulator, whatever the operator's credentials say."""
    from sfarm.exchanges import Credentials, load_credentials, make_exchange
    from sfarm.sim.accounts import account_path, read_account
    from sfarm.trading.broker import Broker

    if exchange.emulate:
        if secrets_file is None:
            raise UsageError(f"live trading on the emulated exchange {name!r} needs the node's "
                             "emulator account, and this task runs outside a node root")
        keys = read_account(account_path(secrets_file.parent, name))
        credentials = Credentials(keys.api_key, keys.secret)
    elif exchange.credentials is None:
        raise UsageError(f"live trading on {exchange.ccxt} needs credentials",
                         hint="set credentials = \"PREFIX\" on the exchange and export "
                              "PREFIX_API_KEY and PREFIX_SECRET (or put them in secrets.toml)")
    else:
        present = secrets_file is not None and secrets_file.exists()
        credentials = load_credentials(exchange.credentials, secrets_file if present else None)
    client = make_exchange(exchange.ccxt, url=exchange.url, sandbox=exchange.sandbox,
                           credentials=credentials)
    return Broker(client, market)


def run_live_mode(context: TaskContext[TradeTask], config: SessionConfig, strategy: Strategy,
                  exchange: Exchange, *, poll_s: float = POLL_S,
                  clock: Callable[[], float] = time.time) -> None:
    """Worker engine of a live `trade` task: trades only while armed by `--live`."""
    from sfarm.trading.live import LiveSession

    root = context.root

    def open_session() -> LiveSession:
        broker = make_broker(exchange, config.market, context.secrets_file,
                             name=context.config.exchange)
        return LiveSession.open(root, config, strategy, broker, clock=clock)

    def hold() -> Hold | None:
        if is_armed(root, context.task):
            return None
        return Hold("sfarm start --live", f"live trading is not armed: {HINT}")

    run_session_loop(context, open_session, cash=config.cash, poll_s=poll_s, hold=hold)
