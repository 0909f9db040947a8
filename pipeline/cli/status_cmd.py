"""`corridor status`: the control plane's view from etcd: towers alive, regions, hazards, staleness."""

from __future__ import annotations

import time

import etcd3
import grpc
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.consistency.table import LIVE, live_ages
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.crdt import LWWMap, decode_state
from pipeline.shared.crdt.errors import CrdtError
from pipeline.shared.errors import StackError
from towers.control_plane import close_client, open_client, read_namespaces
from towers.etcd_pages import etcd_error, json_object

__all__ = ["status"]

out = Console(highlight=False)


def status(ctx: typer.Context) -> None:
    """What etcd holds for each set of towers (its app id): the registered workers, each region's
    consistent snapshot, the global view."""
    settings: Settings = ctx.obj
    access = settings.etcd(Role.READER)
    client = open_client(access, 3)
    try:
        spaces = read_namespaces(client)
    except (etcd3.exceptions.Etcd3Exception, grpc.RpcError) as exc:
        raise StackError(f"etcd at {access}: {etcd_error(exc)} (is the stack up? is ETCD_ENDPOINTS right?)") from None
    finally:
        close_client(client)
    alive = 0
    for app, keys in sorted(spaces.items()):
        try:
            alive += _show(app, keys)
        except (ValueError, TypeError, KeyError, AttributeError, CrdtError) as exc:  # etcd is anyone's to write
            out.print(f"[red]towers {escape(app[:80])}: what etcd holds for them is unreadable ({exc})[/]")
    if not spaces:
        out.print("no towers have registered in etcd")
    if not alive:
        raise typer.Exit(1)


def _show(app: str, keys: dict[str, dict[str, bytes]]) -> int:
    towers = {name: json_object(v) for name, v in keys.get("towers", {}).items()}
    regions = {int(k): json_object(v) for k, v in keys.get("regions", {}).items() if k.isdigit() and len(k) < 6}
    owners = {int(k.split("/")[0]): v.decode() for k, v in keys.get("regions", {}).items() if k.endswith("/owner")}
    raw_view = keys.get("global", {}).get("")
    view = decode_state(raw_view) if raw_view is not None else LWWMap()
    now = int(time.time() * 1000)
    out.print(f"[bold]towers {app}[/]")
    t = Table(title=f"tower workers alive ({len(towers)}): how old what each shows is, per class of data",
              title_justify="left")  # fmt: skip
    for col in ("worker", "regions", "last seen", *(label for _, label in LIVE)):
        t.add_column(col)
    for name, reg in sorted(towers.items()):
        since = max(0, now - reg.get("at_ms", now))
        ages = live_ages(reg.get("staleness_by_class_ms", {}), plus_ms=since)
        t.add_row(name, ",".join(map(str, reg.get("regions", []))), f"{since / 1000:.1f} s ago",
                  *(age for _, age in ages))  # fmt: skip
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
    return len(towers)
