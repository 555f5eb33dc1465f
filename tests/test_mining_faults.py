"""The miner end to end: real ccxt (async) over HTTP against the emulator on 127.0.0.1, into the
real store. Every fault the emulator injects must leave the same dataset as a fault-free run
(except what a maintenance window really removed, which is recorded as an exchange-side gap)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.data.ids import candles_id
from sfarm.exchanges import RetryPolicy
from sfarm.inventory.model import Exchange, MineTask
from sfarm.mining import MineProgress, MineRequest, MinerSettings, mine, run_mine_task
from sfarm.sim.protocol import Request
from sfarm.timeframes import HOUR_MS, MINUTE_MS, candle_open, timeframe_ms
from sfarm.timepoints import parse_time_point

SINCE = parse_time_point("2024-03-01").resolve()
UNTIL = parse_time_point("2024-03-04").resolve()
REQUEST = MineRequest("binance", ("BTC/USDT", "ETH/USDT"), ("1m", "1h"), SINCE, UNTIL)
# Quick retries: the faults are frequent, and the wait is not what is under test.
FAST = MinerSettings(retry=RetryPolicy(max_attempts=12, base_delay=0.02, max_delay=0.2),
                     close_delay_ms=100, poll_ms=200, failure_pause_s=0.2)

# Two windows: one that falls inside a page (a hole between two candles of one reply) and one
# that starts exactly where a page starts (the reply begins later than asked): 1m pages of 1000
# from 03-01 00:00 start at minute 0, 1000, then 2360 (page 2 skipped the first window's 360).
MAINTENANCE = [
    (parse_time_point("2024-03-02T00:00").resolve(),
     parse_time_point("2024-03-02T06:00").resolve()),
    (parse_time_point("2024-03-02T15:20").resolve(),
     parse_time_point("2024-03-02T17:00").resolve()),
]


def exchange(url: str) -> Exchange:
    return Exchange(ccxt="binance", url=url)


def stored(root: Path) -> dict[str, pl.DataFrame]:
    return {i: data.read(root, i) for i in REQUEST.dataset_ids()}


def assert_verifies(root: Path, ids: list[str]) -> None:
    for dataset_id in ids:
        report = data.verify(root, dataset_id)
        assert report.ok, (dataset_id, report.problems)


@pytest.fixture(scope="session")
def reference(emulator, tmp_path_factory) -> dict[str, pl.DataFrame]:
    """The fault-free run every faulty run must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    result = mine(root, REQUEST, exchange(emulator.url), settings=FAST)
    assert not result.failures
    return stored(root)


def test_backfill_two_markets_two_timeframes(reference, tmp_path) -> None:
    for dataset_id, frame in reference.items():
        step = timeframe_ms(dataset_id.rsplit("/", 1)[1])
        assert frame["ts"].to_list() == list(range(SINCE, UNTIL, step)), dataset_id
        assert frame.schema == {"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64,
                                "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64}
    # The two markets are different walks, and 1h agrees with its 1m candles.
    btc, eth = reference[candles_id("binance", "BTC/USDT", "1m")], \
        reference[candles_id("binance", "ETH/USDT", "1m")]
    assert btc["close"][0] != eth["close"][0]
    hourly = btc.group_by((pl.col("ts") // HOUR_MS) * HOUR_MS, maintain_order=True).agg(
        pl.col("high").max(), pl.col("volume").sum())
    ref_hourly = reference[candles_id("binance", "BTC/USDT", "1h")]
    assert hourly["high"].to_list() == ref_hourly["high"].to_list()


@pytest.mark.parametrize("faults,timeout_ms", [
    ("rate_limit=0.3:0.05", None),
    ("server_error=0.3", None),
    ("server_error=0.2:502,rate_limit=0.1:0.02", None),
    ("slow=0.3:1.5", 400),
    ("drop=0.3", None),
    ("short_page=0.6", None),
], ids=["429", "503", "502+429", "slow+timeout", "drop", "short-pages"])
def test_faults_leave_the_same_complete_dataset(emulator_factory, reference, tmp_path,
                                               faults: str, timeout_ms: int | None) -> None:
    faulty = emulator_factory(faults)  # seed 0, as the reference: same candles
    result = mine(tmp_path, REQUEST, exchange(faulty.url), settings=FAST, timeout_ms=timeout_ms)
    assert not result.failures, [d.error for d in result.failures]
    assert_verifies(tmp_path, REQUEST.dataset_ids())
    got = stored(tmp_path)
    for dataset_id, frame in reference.items():
        assert got[dataset_id].equals(frame), dataset_id
        assert data.load_manifest(tmp_path, dataset_id).extra.get("exchange_gaps", []) == []
    # The faults really happened: retries, or (short pages) more requests than pages of 1000.
    if "short_page" in faults:
        assert all(d.requests > 5 for d in result.datasets if d.timeframe == "1m")
    else:
        assert sum(d.retries for d in result.datasets) >= 2


def _touches_maintenance(ts: int, step: int) -> bool:
    return any(ts < end and ts + step > start for start, end in MAINTENANCE)


def test_maintenance_gap_is_recorded_and_everything_else_stored(emulator_factory, reference,
                                                                tmp_path) -> None:
    spec = ",".join(f"maintenance={a}/{b}" for a, b in MAINTENANCE) + ",short_page=0.2"
    faulty = emulator_factory(spec)
    result = mine(tmp_path, REQUEST, exchange(faulty.url), settings=FAST)
    assert not result.failures
    assert_verifies(tmp_path, REQUEST.dataset_ids())
    (a1, b1), (a2, b2) = MAINTENANCE
    expected_gaps = {"1m": [[a1, b1], [a2, b2]],
                     # 15:00 exists (built from its 20 minutes), 16:00 has no minute at all.
                     "1h": [[a1, b1], [a2 + 40 * MINUTE_MS, b2]]}
    for status in result.datasets:
        manifest = data.load_manifest(tmp_path, status.dataset_id)
        assert manifest.extra["exchange_gaps"] == expected_gaps[status.timeframe]
        assert status.exchange_gaps == expected_gaps[status.timeframe]
        step = timeframe_ms(status.timeframe)
        got = data.read(tmp_path, status.dataset_id)
        ref = reference[status.dataset_id]
        ref_outside = pl.Series([not _touches_maintenance(ts, step) for ts in ref["ts"]])
        got_outside = pl.Series([not _touches_maintenance(ts, step) for ts in got["ts"]])
        assert got.filter(got_outside).equals(ref.filter(ref_outside))
        # Inside the windows only what the exchange had (a 1h candle built from some minutes).
        inside_gaps = got.filter(~got_outside)
        assert all(not (a <= ts < b) for ts in inside_gaps["ts"]
                   for a, b in expected_gaps[status.timeframe])


def test_stop_mid_backfill_then_resume(emulator, reference, tmp_path) -> None:
    stop = threading.Event()

    def on_progress(status: MineProgress) -> None:
        if status.timeframe == "1m" and status.candles_received >= 2000:
            stop.set()

    first = mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST, stop=stop,
                 on_progress=on_progress)
    assert "stopped" in {d.phase for d in first.datasets}
    partial = [i for i in REQUEST.dataset_ids() if data.load_manifest(tmp_path, i) is not None]
    assert_verifies(tmp_path, partial)
    assert sum(data.load_manifest(tmp_path, i).rows for i in partial) < \
        sum(f.height for f in reference.values())

    second = mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST)
    assert {d.phase for d in second.datasets} == {"done"}
    assert_verifies(tmp_path, REQUEST.dataset_ids())
    for dataset_id, frame in stored(tmp_path).items():
        assert frame.equals(reference[dataset_id]), dataset_id
    assert sum(d.rows_added for d in first.datasets + second.datasets) == \
        sum(f.height for f in reference.values())


class AllInFlight:
    """Holds every candle request until requests for `count` different datasets have arrived,
    and says whether that happened. Fetched one after another, the second dataset's request
    would never come while the first is held: the hold ends on its timeout instead (once; later
    requests pass at once)."""

    def __init__(self, count: int, timeout_s: float = 60.0) -> None:
        self.count, self.timeout_s = count, timeout_s
        self.datasets: set[tuple[str | None, str | None]] = set()
        self.together = self.gave_up = False
        self._changed = threading.Condition()

    def __call__(self, request: Request) -> None:
        if not request.path.endswith("/klines"):
            return
        with self._changed:
            self.datasets.add((request.params.get("symbol"), request.params.get("interval")))
            if len(self.datasets) >= self.count:
                self.together = True
                self._changed.notify_all()
            if not (self.together or self.gave_up):
                self.gave_up = not self._changed.wait_for(lambda: self.together, self.timeout_s)


def test_markets_are_fetched_concurrently(emulator_factory, tmp_path) -> None:
    """Six datasets of one page each: the requests of all six are in flight together."""
    running = emulator_factory()
    hold = AllInFlight(6)
    running.before_answer(hold)
    request = MineRequest("binance", ("BTC/USDT", "ETH/USDT", "SOL/USDT"), ("1h", "4h"),
                          SINCE, UNTIL)
    result = mine(tmp_path, request, exchange(running.url), settings=FAST)
    assert not result.failures
    assert sum(d.requests for d in result.datasets) == 6
    assert hold.together and not hold.gave_up, f"never all in flight: {sorted(hold.datasets)}"


def test_live_edge_stores_up_to_the_last_closed_candle(emulator, tmp_path) -> None:
    """One live step of the task engine: backfill to the live edge, then wait for the next
    close (stopped there); the last stored candle is the last closed one."""
    task = MineTask(kind="mine", exchange="binance", markets=["BTC/USDT"],
                    timeframes=["1m", "5m"], since="40m")
    stop = threading.Event()
    live: dict[str, tuple[int | None, int, int]] = {}

    def on_progress(status: MineProgress) -> None:
        if status.phase == "live" and status.dataset_id not in live:
            # end_open: the first candle still open when the last request was sent.
            live[status.dataset_id] = (status.last_ts, status.end_open,
                                       int(time.time() * 1000))
            if len(live) == 2:
                stop.set()

    result = run_mine_task(tmp_path, "mine-btc", task, exchange(emulator.url),
                           stop_event=stop, on_progress=on_progress, settings=FAST)
    assert {d.phase for d in result.datasets} == {"stopped"}
    for status in result.datasets:
        last_ts, open_at_request, seen_at = live[status.dataset_id]
        step = timeframe_ms(status.timeframe)
        assert last_ts == open_at_request - step  # the last closed candle is stored
        # ... and that really was the open one: at most one candle closed since the request.
        assert candle_open(seen_at, status.timeframe) - open_at_request in (0, step)
        frame = data.read(tmp_path, status.dataset_id)
        assert frame["ts"][-1] == last_ts
        assert frame["ts"].diff().drop_nulls().unique().to_list() == [step]
    assert_verifies(tmp_path, [d.dataset_id for d in result.datasets])


def test_a_miner_never_loads_or_sends_credentials(emulator_factory, tmp_path,
                                                 monkeypatch) -> None:
    # Public candles need none: credentials on the exchange (even wrong ones) are not read,
    # and no request is signed (with keys, ccxt's binance would load currencies from a signed
    # endpoint first).
    monkeypatch.setenv("SIM_API_KEY", "sfarm-sim-key")
    monkeypatch.setenv("SIM_SECRET", "not-the-secret")
    running = emulator_factory()
    answered = running.before_answer(lambda request: None)
    result = mine(tmp_path, REQUEST, Exchange(ccxt="binance", url=running.url,
                                              credentials="SIM"), settings=FAST)
    assert all(dataset.rows_added > 0 for dataset in result.datasets)
    assert answered and not any(r.path.startswith("/sapi/") for r in answered)


def test_exchange_gone_mid_run_fails_the_datasets_and_keeps_what_was_stored(
        emulator_factory, tmp_path) -> None:
    going = emulator_factory()
    closed = threading.Event()

    def on_progress(status: MineProgress) -> None:
        if status.rows_added and not closed.is_set():
            closed.set()
            going.close()  # connections refused from now on

    result = mine(tmp_path, REQUEST, exchange(going.url), settings=FAST,
                  on_progress=on_progress)
    assert result.failures
    for status in result.failures:
        assert "gave up after 12 attempts" in (status.error or "")
    stored_ids = [i for i in REQUEST.dataset_ids() if data.load_manifest(tmp_path, i)]
    assert stored_ids
    assert_verifies(tmp_path, stored_ids)


def test_a_clock_ahead_of_the_exchange_does_not_store_its_open_candle(emulator_factory,
                                                                      tmp_path) -> None:
    behind_s = 150  # the exchange's clock is 2.5 minutes behind this machine's
    lagging = emulator_factory(clock=lambda: time.time() - behind_s)
    request = MineRequest("binance", ("BTC/USDT",), ("1m",), int(time.time() * 1000) - HOUR_MS)
    result = mine(tmp_path, request, exchange(lagging.url), settings=FAST)
    exchange_now = int((time.time() - behind_s) * 1000)
    last_closed = candle_open(exchange_now, "1m") - MINUTE_MS
    last_ts = result.datasets[0].last_ts
    assert last_ts is not None and last_ts <= last_closed
    assert last_ts >= last_closed - MINUTE_MS  # a minute may have turned meanwhile
