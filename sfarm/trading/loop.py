"""The worker's loop of a forward session (paper or live), written once for both.

Each turn: open the session if it is not open yet, let it advance (new candles, or for a live
session a price poll), say on the board what it waits for, report its datasets, equity and
position, and show a halted session as `halted`. Inputs that do not exist yet (`WaitingFor`)
are named on the board and waited for; any other error leaves the loop for the worker, which
reports it and runs the engine again after a backoff. A turn that processed candles is followed
at once by the next (catching up); otherwise the loop sleeps `poll_s`, or until one of its
inputs commits or it is stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from sfarm.context import TaskContext
from sfarm.tasks import TradeTask
from sfarm.trading.feed import WaitingFor
from sfarm.trading.session import report_session


class ForwardSession(Protocol):
    """What the loop needs of a session (`PaperSession`, `LiveSession`)."""

    @property
    def halted(self) -> str | None:
        """Why the kill switch halted the session for good; None while it trades."""
        ...

    @property
    def position(self) -> float: ...

    def equity(self) -> float: ...

    @property
    def inputs(self) -> tuple[str, ...]:
        """The datasets the session reads: a commit of one wakes the loop."""
        ...

    def advance(self) -> int:
        """Do what is new; the number of candles processed."""
        ...

    def waiting_for(self, processed: int) -> str | None:
        """What the session waits for after a turn that processed `processed` candles."""
        ...


class Hold(NamedTuple):
    """Why the session must not run now, as the board shows it."""

    waiting_for: str
    error: str


def run_session_loop(context: TaskContext[TradeTask], open_session: Callable[[], ForwardSession],
                     *, cash: float, poll_s: float,
                     hold: Callable[[], Hold | None] = lambda: None) -> None:
    """Run a session until `context.stop` is set.

    `open_session` resumes or starts it (it may raise `WaitingFor`); while `hold` gives a
    reason, the session is closed and not run (it is opened again, so reconciled, once the
    hold lifts). `cash` is the starting equity, for the board's pnl.
    """
    board = context.board
    session: ForwardSession | None = None
    held = False
    while not context.stop.is_set():
        on_hold = hold()
        if on_hold is not None:
            session, held = None, True
            board.wait_for(on_hold.waiting_for)
            board.error(on_hold.error)
            if context.sleep(poll_s):
                break
            continue
        processed = 0
        try:
            if session is None:
                session = open_session()
                if held:  # the hold's error no longer holds
                    board.error(None)
                    held = False
            processed = session.advance()
            board.wait_for(session.waiting_for(processed))
        except WaitingFor as missing:
            board.wait_for(str(missing))
        if session is not None:
            board.count("candles", processed)
            report_session(board, context.root, context.task, session.equity(),
                           session.position, cash)
            if session.halted:
                board.set_state("halted")
                board.error(session.halted)
        if not processed and context.sleep_until_commit(
                session.inputs if session is not None else (), poll_s):
            break
