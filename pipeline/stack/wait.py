"""Waiting for a stack someone else starts: a Kubernetes Job's first container, say, whose Kafka,
etcd and tower workers come up beside it in any order. Without it the Job's first attempt fails on
whichever is not yet there, and a retry budget is spent on start-up order."""

from __future__ import annotations

import time
from collections.abc import Callable

import etcd3
import grpc

from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.stack import Stack
from towers.control_plane import close_client, open_client, read_namespaces
from towers.etcd_pages import etcd_error

__all__ = ["missing_now", "towers_missing", "wait_for_stack"]


def towers_missing(spaces: dict[str, dict[str, dict[str, bytes]]], regions: int) -> str | None:
    """None once one set of towers has a live owner for every region, else what is missing."""
    best: set[int] = set()
    for keys in spaces.values():
        alive = set(keys.get("towers", {}))
        owned = {int(k.split("/")[0]) for k, v in keys.get("regions", {}).items()
                 if k.endswith("/owner") and k.split("/")[0].isdigit() and v.decode() in alive}  # fmt: skip
        if len(owned) > len(best):
            best = owned
    missing = sorted(set(range(regions)) - best)
    return None if not missing else f"no tower worker owns region(s) {', '.join(map(str, missing))}"


def missing_now(settings: Settings, towers: bool) -> str | None:
    """What is not there yet, in one line, or None."""
    status = Stack(settings).status()
    down = [f"{s.name} at {s.address} is {s.state}" for s in status.services if s.state not in ("running", "external")]
    if down:
        return "; ".join(down)
    if not towers:
        return None
    client = open_client(settings.etcd(Role.READER), 3)
    try:
        spaces = read_namespaces(client)
    except (etcd3.exceptions.Etcd3Exception, grpc.RpcError) as exc:
        return f"etcd: {etcd_error(exc)}"
    finally:
        close_client(client)
    return towers_missing(spaces, len(settings.corridor().regions))


def wait_for_stack(settings: Settings, timeout: float, *, towers: bool = False, interval: float = 2.0,
                   on_wait: Callable[[str], None] = lambda _m: None) -> float:  # fmt: skip
    """Poll until Kafka and etcd answer (and, with `towers`, every region has a live tower); the
    seconds it took. Raises StackError naming what was still missing at the deadline."""
    t0 = time.monotonic()
    said = None
    while (missing := missing_now(settings, towers)) is not None:
        if time.monotonic() - t0 > timeout:
            raise StackError(f"still waiting after {timeout:.0f} s: {missing}")
        if missing != said:
            on_wait(missing)
            said = missing
        time.sleep(interval)
    return time.monotonic() - t0
