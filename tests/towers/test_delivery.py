"""Input events wait until every message on their lines produced before their state was written is
acknowledged; a message the producer gave up on is sent again, not counted as settled."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from towers.delivery import DeliveryLedger, Held

ADV3, ADV7, DEAD3 = ("advisory", 3), ("advisory", 7), ("dead-letter", 3)


def test_an_event_waits_for_the_messages_produced_before_it_was_held() -> None:
    ledger = DeliveryLedger()
    held: Held[str] = Held(ledger)
    a, b = ledger.produced(ADV3), ledger.produced(ADV3)
    held.hold("first", "t3", [ADV3])
    c = ledger.produced(ADV3)
    held.hold("second", "t3", [ADV3])
    assert ledger.settle(ADV3, b, ok=True)
    assert held.release() == []  # a is older and still out
    assert ledger.settle(ADV3, a, ok=True)
    assert held.release() == ["first"]
    assert ledger.settle(ADV3, c, ok=True)
    assert held.release() == ["second"]
    assert (ledger.delivered["advisory"], ledger.unsettled) == (3, 0)


def test_a_message_that_timed_out_holds_its_event_until_it_is_delivered_on_a_second_try() -> None:
    """Counting a timed-out advisory as settled committed its input with the alert lost."""
    ledger = DeliveryLedger()
    held: Held[str] = Held(ledger)
    seq = ledger.produced(ADV3)
    held.hold("hazard", "h3", [ADV3])
    assert not ledger.settle(ADV3, seq, ok=False), "not settled: it must be sent again"
    assert held.release() == [] and ledger.resent["advisory"] == 1
    assert ledger.settle(ADV3, seq, ok=True)
    assert held.release() == ["hazard"]


def test_a_message_refused_for_good_is_settled_and_counted_as_failed() -> None:
    ledger = DeliveryLedger()
    held: Held[str] = Held(ledger)
    seq = ledger.produced(DEAD3)
    held.hold("junk", "t3", [DEAD3])
    assert ledger.settle(DEAD3, seq, ok=False, permanent=True)
    assert held.release() == ["junk"] and ledger.failed["dead-letter"] == 1


def test_a_partition_without_a_leader_holds_back_only_the_events_that_wrote_to_it() -> None:
    """One sequence for every region and kind let one leaderless partition stall every region's commits."""
    ledger = DeliveryLedger()
    held: Held[str] = Held(ledger)
    ledger.produced(ADV3)  # region 3's advisory partition has no leader: never acknowledged
    seq = ledger.produced(ADV7)
    held.hold("region 3", "t3", [ADV3, DEAD3])
    held.hold("region 7", "t7", [ADV7])
    ledger.settle(ADV7, seq, ok=True)
    assert held.release() == ["region 7"]
    assert len(held) == 1


def test_an_event_that_caused_nothing_is_released_at_once_and_revoked_ones_are_forgotten() -> None:
    ledger = DeliveryLedger()
    held: Held[tuple[str, int]] = Held(ledger)
    held.hold(("t", 1), 1, [ADV3])
    held.hold(("t", 2), 2, [ADV3])
    seq = ledger.produced(ADV3)
    held.hold(("t", 1), 1, [ADV3])
    held.drop(lambda item: item[1] != 1)
    assert held.release() == [("t", 2)]
    ledger.settle(ADV3, seq, ok=True)
    assert held.release() == [] and len(held) == 0


@given(st.data(), st.integers(1, 40))
def test_any_order_of_reports_releases_an_event_exactly_when_all_before_it_are_delivered(data, n: int) -> None:
    ledger = DeliveryLedger()
    held: Held[int] = Held(ledger)
    lines = [ADV3, ADV7, DEAD3]
    sent: list[tuple[tuple[str, int], int]] = []
    marks = []
    for i in range(n):
        line = data.draw(st.sampled_from(lines))
        sent.append((line, ledger.produced(line)))
        if data.draw(st.booleans()):
            waits = data.draw(st.lists(st.sampled_from(lines), min_size=1, unique=True))
            held.hold(i, "one source", waits)
            marks.append((i, [k for k, (line, _) in enumerate(sent) if line in waits]))
    delivered: set[int] = set()
    released: list[int] = []
    pending = data.draw(st.permutations(range(n)))
    for k in pending:
        line, seq = sent[k]
        if not ledger.settle(line, seq, ok=data.draw(st.booleans())):  # timed out: sent again
            assert ledger.settle(line, seq, ok=True)
        delivered.add(k)
        released += held.release()
        expected = []  # in order from one source: each once it and all held before it are ready
        for i, before in marks:
            if not all(j in delivered for j in before):
                break
            expected.append(i)
        assert released == expected
    assert ledger.unsettled == 0 and released == [i for i, _ in marks]
