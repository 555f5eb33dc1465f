"""The broker's book of a live session (`sfarm.trading.book`): its changes, and its place in the
committed session state (the same JSON as live sessions have always written)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfarm.trading.book import APPLIED_KEPT, BrokerBook
from sfarm.trading.engine import EngineState
from sfarm.trading.feed import FeedState
from sfarm.trading.session import RiskState, SessionState

client_ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=30)
books = st.builds(BrokerBook, created_at=st.integers(0, 2**53),
                  applied=st.lists(client_ids, max_size=APPLIED_KEPT).map(tuple),
                  target=st.none() | client_ids, target_seq=st.integers(0, 1000))


def test_a_new_book_knows_no_order() -> None:
    book = BrokerBook(created_at=5)
    assert book.target is None and book.target_seq == 0
    assert not book.has_applied("sf1-0-e")


def test_applied_fills_keep_the_newest() -> None:
    book = BrokerBook()
    for n in range(APPLIED_KEPT + 10):
        book = book.applying(f"id-{n}")
    assert len(book.applied) == APPLIED_KEPT
    assert book.has_applied(f"id-{APPLIED_KEPT + 9}") and book.has_applied("id-10")
    assert not book.has_applied("id-9")
    assert book.applied[-1] == f"id-{APPLIED_KEPT + 9}"  # oldest first


def test_a_take_profit_rests_then_ends_keeping_its_count() -> None:
    book = BrokerBook().with_target("sf1-60000-t1", 1)
    assert (book.target, book.target_seq) == ("sf1-60000-t1", 1)
    ended = book.without_target()
    assert ended.target is None and ended.target_seq == 1  # the next one is number 2


@given(books)
def test_the_book_survives_its_json(book: BrokerBook) -> None:
    assert BrokerBook.from_json(book.to_json()) == book


def test_the_json_is_what_live_sessions_committed_before_the_book_was_typed() -> None:
    committed = {"created_at": 1_700_000_000_000, "applied": ["sfa-1-e"],
                 "target": "sfa-1-t1", "target_seq": 1}
    book = BrokerBook.from_json(committed)
    assert book == BrokerBook(1_700_000_000_000, ("sfa-1-e",), "sfa-1-t1", 1)
    assert book.to_json() == committed
    assert BrokerBook.from_json({}) == BrokerBook()  # what paper sessions committed


def test_the_session_state_carries_the_book() -> None:
    state = SessionState(mode="live", strategy="s", cash=100.0,
                         engine=EngineState.initial(100.0),
                         feed=FeedState(last_ts=0, sources={}),
                         risk=RiskState.initial(100.0, 0),
                         broker=BrokerBook(7).with_target("sfa-0-t1", 1))
    document = state.to_json()
    assert document["broker"]["target"] == "sfa-0-t1"
    assert SessionState.from_json(document).broker == state.broker
