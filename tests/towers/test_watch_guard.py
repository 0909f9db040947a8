"""etcd3's watch thread, closed under it at any moment, ends without a traceback."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from towers.control_plane import GuardedWatch


class _ClosedChannel:
    def Watch(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("Cannot invoke RPC: Channel closed!")


def test_a_stream_opened_on_a_closed_channel_ends_the_thread_quietly() -> None:
    with pytest.raises(SystemExit):
        GuardedWatch(_ClosedChannel()).Watch(iter(()))
    failures: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = failures.append
    try:
        t = threading.Thread(target=GuardedWatch(_ClosedChannel()).Watch, args=(iter(()),))
        t.start()
        t.join(5)
    finally:
        threading.excepthook = previous
    assert [f.exc_type for f in failures] == [SystemExit], "what Python's thread hook ignores, silently"


def test_a_working_stub_is_passed_through() -> None:
    class Stub:
        def Watch(self, requests: Any, **kw: Any) -> str:
            return f"stream {kw['metadata']}"

    assert GuardedWatch(Stub()).Watch(iter(()), metadata="m") == "stream m"
