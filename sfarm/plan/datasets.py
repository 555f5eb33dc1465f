"""What each task kind produces and consumes, as dataset ids (SPEC section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sfarm.data.ids import SESSION_PARTS, candles_id, indicator_id, session_id
from sfarm.indicators.spec import parse_spec
from sfarm.tasks import IndicatorsTask, MineTask, Task, TradeTask


@dataclass(frozen=True)
class DatasetNeed:
    """A dataset a task reads. Optional needs are ones the task can compute itself (a trade
    session computes its strategy's indicators when no indicators task shares them)."""

    dataset: str
    optional: bool = False


def task_outputs(name: str, task: Task) -> list[str]:
    if isinstance(task, MineTask):
        return [candles_id(task.exchange, market, timeframe)
                for market in task.markets for timeframe in task.timeframes]
    if isinstance(task, IndicatorsTask):
        keys = [parse_spec(text).key for text in task.indicators]
        return [indicator_id(task.exchange, market, timeframe, key)
                for market in task.markets for timeframe in task.timeframes for key in keys]
    return [session_id(name, part) for part in SESSION_PARTS]


def task_inputs(task: Task, strategy_indicators: Sequence[str] = ()) -> list[DatasetNeed]:
    needs: list[DatasetNeed] = []
    if isinstance(task, IndicatorsTask):
        needs += [DatasetNeed(candles_id(task.exchange, market, timeframe))
                  for market in task.markets for timeframe in task.timeframes]
    elif isinstance(task, TradeTask):
        needs.append(DatasetNeed(candles_id(task.exchange, task.market, task.timeframe)))
        needs += [DatasetNeed(indicator_id(task.exchange, task.market, task.timeframe,
                                           parse_spec(text).key), optional=True)
                  for text in dict.fromkeys(strategy_indicators)]
    needs += [DatasetNeed(dataset) for dataset in task.inputs]
    # A dataset read twice (an `inputs` entry the kind already implies) is one need; it is
    # optional only if every mention is.
    merged: dict[str, bool] = {}
    for need in needs:
        merged[need.dataset] = merged.get(need.dataset, True) and need.optional
    return [DatasetNeed(dataset, optional) for dataset, optional in merged.items()]
