"""The broker's book of a live session: what it must remember about its orders on the exchange
across restarts (kept in the session state, `SessionState.broker`). Paper sessions keep an
empty one.

Pure values: each change returns a new book.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Client ids of fills already applied to the state that a restart must not apply twice; the
# newest are enough, as reconciliation only looks at orders since the last committed candle.
APPLIED_KEPT = 64


@dataclass(frozen=True)
class BrokerBook:
    """A live session's bookkeeping of its orders.

    Example:
        >>> book = BrokerBook(created_at=1_700_000_000_000).with_target("sf12345678-60000-t1", 1)
        >>> book.target, book.applying("sf12345678-0-e").has_applied("sf12345678-0-e")
        ('sf12345678-60000-t1', True)
    """

    created_at: int = 0  # ms: orders placed before it belong to an earlier session
    applied: tuple[str, ...] = ()  # client ids of the last fills applied, oldest first
    target: str | None = None  # client id of the take profit resting on the exchange
    target_seq: int = 0  # how many take profits the current position has had

    def has_applied(self, client_id: str) -> bool:
        return client_id in self.applied

    def applying(self, client_id: str) -> BrokerBook:
        """The book once the fill of `client_id` is in the state."""
        return replace(self, applied=(*self.applied, client_id)[-APPLIED_KEPT:])

    def with_target(self, client_id: str, sequence: int) -> BrokerBook:
        """The book with `client_id`, the position's take profit number `sequence`, resting."""
        return replace(self, target=client_id, target_seq=sequence)

    def without_target(self) -> BrokerBook:
        """The book once its take profit ended (filled, canceled or gone)."""
        return replace(self, target=None)

    def to_json(self) -> dict[str, Any]:
        return {"created_at": self.created_at, "applied": list(self.applied),
                "target": self.target, "target_seq": self.target_seq}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> BrokerBook:
        """Read `to_json`'s document; a key it lacks (a paper session's `{}`) is the default."""
        return cls(created_at=int(document.get("created_at", 0)),
                   applied=tuple(str(i) for i in document.get("applied", ())),
                   target=document.get("target"),
                   target_seq=int(document.get("target_seq", 0)))
