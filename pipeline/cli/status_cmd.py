"""`corridor status`: the control plane's view from etcd: towers alive, regions, hazards, staleness."""

from __future__ import annotations

import json
import time

import etcd3
import grpc
import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings
from pipeline.errors import StackError
from towers.control_plane import ROOT, read_view

__all__ = ["status"]

out = Console(highlight=False)


def status(ctx: typer.Context) -> None:
    """What etcd holds: the registered tower workers, each region's consistent snapshot, the global view."""
    settings: Settings = ctx.obj
    host, port = settings.etcd_hosts[0]
    client = etcd3.client(host=host, port=port, timeout=3)
    try:
        towers = {m.key.decode().rsplit("/", 1)[-1]: json.loads(v) for v, m in client.get_prefix(f"{ROOT}/towers/")}
        regions = {}
        for value, meta in client.get_prefix(f"{ROOT}/regions/"):
            key = meta.key.decode()[len(f"{ROOT}/regions/") :]
            if "/" not in key:
                regions[int(key)] = json.loads(value)
        owners = {int(m.key.decode().split("/")[-2]): v.decode() for v, m in client.get_prefix(f"{ROOT}/regions/")
                  if m.key.decode().endswith("/owner")}  # fmt: skip
        view = read_view(client)
    except (etcd3.exceptions.Etcd3Exception, grpc.RpcError) as exc:
        raise StackError(f"etcd at {host}:{port} did not answer ({type(exc).__name__}): start the stack or "
                         "fix ETCD_ENDPOINTS") from None  # fmt: skip
    finally:
        client.close()
    now = int(time.time() * 1000)
    t = Table(title=f"tower workers alive ({len(towers)})", title_justify="left")
    for col in ("worker", "regions", "last seen", "max sync staleness"):
        t.add_column(col)
    for name, reg in sorted(towers.items()):
        stale = max((int(v) for v in reg.get("staleness_ms", {}).values()), default=0)
        t.add_row(name, ",".join(map(str, reg.get("regions", []))), f"{(now - reg.get('at_ms', now)) / 1000:.1f} s ago",
                  f"{stale / 1000:.1f} s")  # fmt: skip
    out.print(t)
    r = Table(title="regions (consistent snapshots)", title_justify="left")
    for col in ("region", "tower", "owner (alive)", "members", "active hazards"):
        r.add_column(col)
    for rid, snap in sorted(regions.items()):
        owner = owners.get(rid)
        r.add_row(str(rid), snap.get("tower", ""), f"{owner} ✓" if owner in towers else "[red]none[/]",
                  str(snap.get("member_count", 0)), ", ".join(snap.get("hazards", [])))  # fmt: skip
    out.print(r)
    hazards = {k.split("/", 1)[1]: v for k, v in view.value.items() if k.startswith("hazard/")}
    h = Table(title="global view (CRDT join of every tower)", title_justify="left")
    for col in ("hazard", "type", "km", "direction", "source"):
        h.add_column(col)
    for hid, hz in sorted(hazards.items()):
        h.add_row(hid, str(hz.get("type")), f"{hz.get('km', 0):.2f}", str(hz.get("dir")), str(hz.get("source")))
    out.print(h)
    if not towers:
        raise typer.Exit(1)
