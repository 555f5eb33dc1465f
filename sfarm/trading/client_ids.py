"""Client order ids: built and read here only.

An id says what its order is for, so the same decision always gives the same id (the broker
looks it up before placing, which makes orders idempotent across restarts):

    sf<8 hex of sha1(task)>-<open ts of the candle it is for>-<action>[<n>]

with action `x` (exit at the open), `e` (entry at the open), `s` (exit inside the candle: a
stop) or `t` (a resting take profit; `n`, from 1, counts the take profits of one position, as a
canceled order's id would find that order again). Binance allows 36 characters of
[A-Za-z0-9_.:/-]; an id is at most 27 plus the digits of `n`.

The action's number is also where the order's row goes inside its candle (`ts` = candle open +
offset, see `sfarm.trading.session`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sfarm.errors import RunError

# What an order does, numbered as the offset of its row's key inside the candle.
EXIT_AT_OPEN, ENTRY, EXIT_INTRABAR, TARGET = 0, 1, 2, 3
ACTION_CODES = {EXIT_AT_OPEN: "x", ENTRY: "e", EXIT_INTRABAR: "s", TARGET: "t"}
_ACTIONS = {code: action for action, code in ACTION_CODES.items()}


@dataclass(frozen=True)
class ClientOrderId:
    """What a client order id says: the candle its order is for, its action and, for a take
    profit, which one of its position it is (1, 2, ...; None for the other actions)."""

    candle_ts: int
    action: int  # EXIT_AT_OPEN, ENTRY, EXIT_INTRABAR or TARGET
    sequence: int | None = None

    @property
    def row_ts(self) -> int:
        """The key of the order's row: the candle's open plus the action's offset; the n-th
        take profit of a position goes 4 ms further each time (+3, +7, +11, ...)."""
        return self.candle_ts + self.action + 4 * ((self.sequence or 1) - 1)


def client_id_prefix(task: str) -> str:
    """What every client id of `task`'s orders starts with (how its orders are told apart from
    other orders on the same account)."""
    return f"sf{hashlib.sha1(task.encode()).hexdigest()[:8]}-"


def encode(task: str, order: ClientOrderId) -> str:
    """The client id of `task`'s `order`.

    Example:
        >>> encode("trader", ClientOrderId(1700000040000, TARGET, 2))
        'sfa3c9a761-1700000040000-t2'
    """
    if (order.sequence is not None) != (order.action == TARGET):
        raise ValueError("a take profit has a sequence number, other actions none")
    if order.candle_ts < 0 or (order.sequence is not None and order.sequence < 1):
        raise ValueError(f"no client id for {order}")
    suffix = "" if order.sequence is None else str(order.sequence)
    return f"{client_id_prefix(task)}{order.candle_ts}-{ACTION_CODES[order.action]}{suffix}"


def decode(task: str, client_id: str) -> ClientOrderId:
    """Read one of `task`'s client ids; RunError when it is not one of them."""
    head, _, code = client_id.rpartition("-")
    prefix = client_id_prefix(task)
    action = _ACTIONS.get(code[:1])
    candle, digits = head.removeprefix(prefix), code[1:]
    sequence = int(digits) if _is_number(digits) else None
    if (not head.startswith(prefix) or action is None or not _is_number(candle)
            or (action == TARGET and not (sequence and sequence > 0))
            or (action != TARGET and digits)):
        raise RunError(f"order {client_id!r} is not one of task {task!r}'s")
    return ClientOrderId(int(candle), action, sequence)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
