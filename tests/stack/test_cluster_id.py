"""KRaft cluster ids: Kafka's shape, and never one its storage tool would read as an option."""

from __future__ import annotations

import base64
import re
import uuid

import pytest

from pipeline.stack import kafka


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    assert base64.urlsafe_b64encode(b"\xf8" + bytes(15)).decode().startswith("-"), "the first draw is one"
    cid = kafka.new_cluster_id()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) and not cid.startswith("-")


def test_ids_have_kafkas_shape() -> None:
    ids = {kafka.new_cluster_id() for _ in range(500)}
    assert len(ids) == 500 and all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", c) for c in ids)
