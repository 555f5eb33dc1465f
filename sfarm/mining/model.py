"""What a mining run is asked to do and what it reports: plain values shared by the fetch loop,
the task runner, the command line and the worker's heartbeat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sfarm.data.ids import candles_id
from sfarm.mining.windows import expected_candles

Phase = Literal["starting", "backfill", "live", "done", "stopped", "failed"]


@dataclass(frozen=True)
class MineRequest:
    """Candles to download from one exchange.

    `exchange` is the inventory's name for the exchange (it names the datasets); `until_ms`
    bounds candle opens (exclusive); `follow` keeps fetching each new candle as it closes.
    """

    exchange: str
    markets: tuple[str, ...]
    timeframes: tuple[str, ...]
    since_ms: int
    until_ms: int | None = None
    follow: bool = False

    def dataset_ids(self) -> list[str]:
        return [candles_id(self.exchange, m, tf) for m in self.markets for tf in self.timeframes]


@dataclass
class MineProgress:
    """One market x timeframe during (and after) a run. Candle counts are for this run."""

    dataset_id: str
    market: str
    timeframe: str
    phase: Phase = "starting"
    start_open: int = 0  # the first candle this run asked for
    next_open: int = 0  # the next candle to ask for
    end_open: int = 0  # exclusive bound of what can be stored now (closed, before until)
    rows_added: int = 0
    candles_received: int = 0  # kept candles, stored or already there
    requests: int = 0  # pages asked for
    retries: int = 0  # requests repeated after a temporary error
    rows: int = 0  # the dataset's rows after the last append
    first_ts: int | None = None
    last_ts: int | None = None
    exchange_gaps: list[list[int]] = field(default_factory=list)
    error: str | None = None
    # Candles the exchange served with impossible values (sfarm.data.checks): never stored, so
    # their slots stay holes that `verify` lists; `exchange_problem` says what they were.
    bad_candles: int = 0
    exchange_problem: str | None = None

    @property
    def planned(self) -> int:
        """Candle slots between where this run started and the current target."""
        return expected_candles(self.start_open, max(self.end_open, self.next_open),
                                self.timeframe)

    @property
    def done_slots(self) -> int:
        """Candle slots already walked (stored, found stored, or inside an exchange gap)."""
        return expected_candles(self.start_open, self.next_open, self.timeframe)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.dataset_id,
            "rows_added": self.rows_added,
            "rows": self.rows,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "exchange_gaps": [list(gap) for gap in self.exchange_gaps],
            "phase": self.phase,
            "error": self.error,
            "bad_candles": self.bad_candles,
            "exchange_problem": self.exchange_problem,
        }


@dataclass
class MineResult:
    datasets: list[MineProgress]

    @property
    def failures(self) -> list[MineProgress]:
        return [d for d in self.datasets if d.phase == "failed"]

    @property
    def exchange_problems(self) -> list[MineProgress]:
        """Datasets for which the exchange served bad candles (refused, not stored)."""
        return [d for d in self.datasets if d.bad_candles]

    @property
    def rows_added(self) -> int:
        return sum(d.rows_added for d in self.datasets)

    def to_json(self) -> dict[str, Any]:
        return {"datasets": [d.to_json() for d in self.datasets],
                "ok": not self.failures}
