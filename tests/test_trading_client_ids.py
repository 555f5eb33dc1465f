"""Client order ids (`sfarm.trading.client_ids`): what is built is read back, an exchange accepts
it, another task's or a malformed id is refused, and an order's row key follows its id."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.errors import RunError
from sfarm.trading.client_ids import (
    ENTRY,
    EXIT_AT_OPEN,
    EXIT_INTRABAR,
    TARGET,
    ClientOrderId,
    client_id_prefix,
    decode,
    encode,
)
from sfarm.trading.session import order_row

BINANCE_ID = re.compile(r"^[A-Za-z0-9_.:/-]{1,36}$")  # newClientOrderId's rule
tasks = st.text(min_size=1, max_size=40)
candles = st.integers(min_value=0, max_value=10**13 - 1)  # ms up to the year 2286
actions = st.sampled_from([EXIT_AT_OPEN, ENTRY, EXIT_INTRABAR, TARGET])


@st.composite
def orders(draw: st.DrawFn) -> ClientOrderId:
    action = draw(actions)
    sequence = draw(st.integers(1, 10**10 - 1)) if action == TARGET else None
    return ClientOrderId(draw(candles), action, sequence)


@settings(max_examples=300)
@given(task=tasks, order=orders())
def test_an_id_reads_back_as_the_order_it_was_built_for(task: str, order: ClientOrderId) -> None:
    client_id = encode(task, order)
    assert decode(task, client_id) == order
    assert client_id.startswith(client_id_prefix(task))
    assert BINANCE_ID.match(client_id), client_id


@settings(max_examples=100)
@given(task=tasks, other=tasks, order=orders())
def test_another_tasks_id_is_refused(task: str, other: str, order: ClientOrderId) -> None:
    if client_id_prefix(task) == client_id_prefix(other):
        return  # the same task (or a hash collision: the prefix is all that tells them apart)
    with pytest.raises(RunError, match="is not one of task"):
        decode(task, encode(other, order))


@pytest.mark.parametrize("tail", [
    "1700000040000-t",  # a take profit without its number
    "1700000040000-t0",
    "1700000040000-e1",  # a number on an action that has none
    "1700000040000-q",  # no such action
    "17000000x0000-e",
    "-e",
    "1700000040000",
])
def test_a_malformed_id_is_refused(tail: str) -> None:
    with pytest.raises(RunError):
        decode("trader", client_id_prefix("trader") + tail)


def test_building_an_impossible_order_id_is_an_error() -> None:
    with pytest.raises(ValueError):
        encode("trader", ClientOrderId(0, TARGET))  # a take profit needs its number
    with pytest.raises(ValueError):
        encode("trader", ClientOrderId(0, ENTRY, 2))
    with pytest.raises(ValueError):
        encode("trader", ClientOrderId(-60_000, ENTRY))


def test_an_orders_row_is_keyed_by_its_candle_and_action() -> None:
    candle = 1_700_000_040_000
    keys = {order: order_row("trader", order, side="buy", status="closed", amount=1.0,
                             price=1.0, cost=1.0, fee=0.0, reason="signal")["ts"] - candle
            for order in (ClientOrderId(candle, EXIT_AT_OPEN), ClientOrderId(candle, ENTRY),
                          ClientOrderId(candle, EXIT_INTRABAR), ClientOrderId(candle, TARGET, 1),
                          ClientOrderId(candle, TARGET, 2), ClientOrderId(candle, TARGET, 3))}
    assert list(keys.values()) == [0, 1, 2, 3, 7, 11]
    row = order_row("trader", ClientOrderId(candle, TARGET, 2), side="sell", status="open",
                    amount=1.0, price=1.0, cost=0.0, fee=0.0, reason="take_profit")
    assert row["client_id"] == f"{client_id_prefix('trader')}{candle}-t2"
    assert row["action"] == "target"
