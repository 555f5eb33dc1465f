"""Benchmark: how fast data crosses nodes, and how many bytes a pull moves.

1. Latency, on the flow farm of tests/fixtures/flow_farm.py: three user hosts (separate unix
   users, each its own sshd on loopback) with miner -> quant (RSI) -> trader (paper session),
   the emulator's 1m candles in real time. A sampler in this process (root reads every node
   root) looks at the datasets' manifests every 5 ms and notes when each candle reaches each
   place: the miner's commit, the quant's mirror, the quant's RSI commit, the trader's two
   mirrors and the trader's decision (its equity row for that candle). Medians over at least 6
   candles, after the first one that follows `sfarm up`.
2. Bytes: a producer holding 30 days of 1m candles, pulled through the gate into an empty
   mirror, then again after one more day was appended.

Run: `pytest tests/benchmarks/bench_resolver.py -p no:cacheprovider -o addopts="" -s`
(about 8 minutes: it waits for real candles).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm import data
from sfarm.data.ids import session_id
from sfarm.resolver.link import peer_link, pull
from sfarm.resolver.routes import Peer
from tests.fixtures.flow_farm import CANDLES, RSI, flow_farm
from tests.fixtures.series import walk_candles
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

CANDLES_TO_MEASURE = 6
MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
SAMPLE_S = 0.005


class Sampler(threading.Thread):
    """When each candle (by its ts) first appears in each watched dataset: name -> ts -> time."""

    def __init__(self, places: dict[str, tuple[Path, str, str | None]]) -> None:
        super().__init__(daemon=True)
        self.places = places
        self.seen: dict[str, dict[int, float]] = {name: {} for name in places}
        self.done = threading.Event()
        self._marks: dict[str, object] = {}

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            now = time.time()
            for name, (root, dataset, node) in self.places.items():
                mark = data.commit_marks(root, [dataset])
                if mark == self._marks.get(name):
                    continue
                self._marks[name] = mark
                manifest = data.load_manifest(root, dataset, mirror_of=node,
                                              with_partitions=False)
                if manifest is not None and manifest.last_ts is not None:
                    self.seen[name].setdefault(manifest.last_ts, now)


def _hop(sampler: Sampler, start: str, end: str, candles: list[int]) -> list[float]:
    return [sampler.seen[end][ts] - sampler.seen[start][ts] for ts in candles]


def _line(what: str, values: list[float]) -> str:
    return (f"{what:<52} median {statistics.median(values) * 1000:7.0f} ms   "
            f"min {min(values) * 1000:6.0f}   max {max(values) * 1000:6.0f}   (n={len(values)})")


@pytest.mark.timeout((CANDLES_TO_MEASURE + 8) * 60)  # it waits for real 1m candles
def test_bench_resolver_latency(user_hosts: Callable[[int], list[SSHServer]]) -> None:
    with flow_farm(user_hosts(3)) as (farm, _servers):
        assert farm.sfarm("up", "--json", check=False).returncode == 0
        miner, quant, trader = (farm.root(name) for name in ("miner", "quant", "trader"))
        equity = session_id("paper", "equity")
        sampler = Sampler({
            "miner commit": (miner, CANDLES, None),
            "quant mirror": (quant, CANDLES, "miner"),
            "quant rsi": (quant, RSI, None),
            "trader candles": (trader, CANDLES, "miner"),
            "trader rsi": (trader, RSI, "quant"),
            "trader decision": (trader, equity, None),
        })
        wait_for(lambda: data.locate(trader, equity) is not None, timeout_s=180,
                 interval_s=0.5, what="the paper session's first decision")
        sampler.start()
        first = (int(time.time() * 1000) // MINUTE_MS + 1) * MINUTE_MS  # the next candle
        wanted = [first + i * MINUTE_MS for i in range(1, CANDLES_TO_MEASURE + 1)]
        wait_for(lambda: wanted[-1] in sampler.seen["trader decision"],
                 timeout_s=(CANDLES_TO_MEASURE + 3) * 60, interval_s=1.0,
                 what=f"{CANDLES_TO_MEASURE} candles decided on")
        sampler.done.set()
        sampler.join()
    closes = {ts: (ts + MINUTE_MS) / 1000 for ts in wanted}
    close_to_commit = [sampler.seen["miner commit"][ts] - closes[ts] for ts in wanted]
    close_to_decision = [sampler.seen["trader decision"][ts] - closes[ts] for ts in wanted]
    print(f"\nresolver latency on {os.cpu_count()} cores, {len(wanted)} candles of 1m:")
    for what, values in [
        ("miner commit -> quant mirror (producer -> consumer)",
         _hop(sampler, "miner commit", "quant mirror", wanted)),
        ("miner commit -> trader mirror", _hop(sampler, "miner commit", "trader candles",
                                               wanted)),
        ("quant mirror -> quant RSI commit", _hop(sampler, "quant mirror", "quant rsi",
                                                  wanted)),
        ("quant RSI commit -> trader mirror (producer -> consumer)",
         _hop(sampler, "quant rsi", "trader rsi", wanted)),
        ("miner commit -> trader decision (three nodes)",
         _hop(sampler, "miner commit", "trader decision", wanted)),
        ("candle close -> miner commit", close_to_commit),
        ("candle close -> trader decision", close_to_decision),
    ]:
        print(_line(what, values))


def test_bench_incremental_pull_bytes(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    days = 30
    history = walk_candles(days * 24 * 60, seed=3, start=1_704_067_200_000, step_ms=MINUTE_MS,
                           sigma=0.001, wick=0.0005)
    data.append(producer, CANDLES, history)
    link = peer_link(consumer, Peer(node="miner", host="local", root=str(producer),
                                    datasets=(CANDLES,)))
    started = time.perf_counter()
    whole = pull(link, CANDLES, consumer)
    whole_s = time.perf_counter() - started
    next_day = walk_candles(24 * 60, seed=4, start=1_704_067_200_000 + days * DAY_MS,
                            step_ms=MINUTE_MS, sigma=0.001, wick=0.0005)
    data.append(producer, CANDLES, next_day)
    started = time.perf_counter()
    one_day = pull(link, CANDLES, consumer)
    day_s = time.perf_counter() - started
    total = sum(path.stat().st_size for path in data.dataset_dir(producer, CANDLES).iterdir()
                if not path.name.startswith("."))
    assert data.verify(consumer, CANDLES, mirror_of="miner").ok
    print(f"\npull of {CANDLES} ({days + 1} days of 1m, {total:,} bytes on the producer):")
    print(f"  first pull (whole dataset):  {whole.bytes:>10,} bytes in {whole.files} files, "
          f"{whole_s * 1000:.0f} ms")
    print(f"  after one more day:          {one_day.bytes:>10,} bytes in {one_day.files} files, "
          f"{day_s * 1000:.0f} ms ({one_day.bytes / whole.bytes:.1%} of the first)")

