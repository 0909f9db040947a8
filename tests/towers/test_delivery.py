"""Input events wait until every message produced before their state was written is settled."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from towers.delivery import DeliveryLedger, Held


def test_an_event_waits_for_the_messages_produced_before_it_was_held() -> None:
    ledger = DeliveryLedger()
    held: Held[str] = Held(ledger)
    a, b = ledger.produced(), ledger.produced()
    held.hold("first")
    c = ledger.produced()
    held.hold("second")
    ledger.settle(b, "advisory", ok=True)
    assert held.release() == []  # a is older and still out
    ledger.settle(a, "advisory", ok=True)
    assert held.release() == ["first"]
    ledger.settle(c, "dead-letter", ok=False)  # given up on: settled, and counted
    assert held.release() == ["second"]
    assert (ledger.delivered["advisory"], ledger.failed["dead-letter"], ledger.unsettled) == (2, 1, 0)


def test_an_event_that_caused_nothing_is_released_at_once_and_revoked_ones_are_forgotten() -> None:
    ledger = DeliveryLedger()
    held: Held[tuple[str, int]] = Held(ledger)
    held.hold(("t", 1))
    held.hold(("t", 2))
    seq = ledger.produced()
    held.hold(("t", 1))
    held.drop(lambda item: item[1] != 1)
    assert held.release() == [("t", 2)]
    ledger.settle(seq, "advisory", ok=True)
    assert held.release() == [] and len(held) == 0


@given(st.data(), st.integers(1, 40))
def test_any_order_of_reports_releases_an_event_exactly_when_all_before_it_are_settled(data, n: int) -> None:
    ledger = DeliveryLedger()
    held: Held[int] = Held(ledger)
    marks = []
    for i in range(n):
        ledger.produced()
        if data.draw(st.booleans()):
            held.hold(i)
            marks.append((i, ledger.mark()))
    settled: set[int] = set()
    released: list[int] = []
    for seq in data.draw(st.permutations(range(n))):
        ledger.settle(seq, "advisory", ok=data.draw(st.booleans()))
        settled.add(seq)
        released += held.release()
        expected = [i for i, mark in marks if all(s in settled for s in range(mark))]
        assert released == expected
    assert ledger.unsettled == 0 and ledger.settled_below() == n
