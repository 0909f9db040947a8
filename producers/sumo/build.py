"""Build the corridor's SUMO network with `netconvert`, once per route: cached by what went into it.

SUMO is an extra (`pip install -e '.[sumo]'`): its wheel ships `netconvert` and `sumo`, and
`libsumo` runs the simulation inside corridor's own process, so nothing SUMO starts can outlive it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.corridor import Route
from pipeline.shared.errors import ConfigError
from producers.sumo.network import NetworkPlan, plan_network

__all__ = ["BuiltNetwork", "build_network", "require_sumo", "sumo_binary"]

#: geo input, no U-turns on a motorway, and no slowing at the polyline's kinks (the waypoints are
#: approximate: the real road bends gently there)
NETCONVERT_OPTIONS = ("--proj.utm", "--no-turnarounds", "--junctions.limit-turn-speed", "-1")
INSTALL_HINT = "SUMO is not installed: pip install -e '.[sumo]' (eclipse-sumo, libsumo, sumolib from PyPI)"


@dataclass(frozen=True)
class BuiltNetwork:
    plan: NetworkPlan
    path: Path  # the .net.xml
    cached: bool  # built by an earlier call


def sumo_binary(name: str) -> Path:
    """A SUMO tool from the installed wheel, or a one-line ConfigError saying how to install it."""
    try:
        import sumo  # an optional extra: imported when used
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    path = Path(sumo.SUMO_HOME) / "bin" / name
    if not path.is_file():
        raise ConfigError(f"{INSTALL_HINT} ({path} is missing)")
    return path


def require_sumo() -> None:
    """Say before anything starts, in one line, that the extra is missing."""
    sumo_binary("netconvert")
    try:
        import libsumo  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None


def build_network(route: Route, cache_dir: Path, preexec: Callable[[], None] | None = None) -> BuiltNetwork:
    """The route's network, built into `cache_dir/sumo/<digest>/corridor.net.xml` unless already there.
    `preexec` runs in netconvert's process before it starts (the tools pass one that makes it die with
    them)."""
    plan = plan_network(route)
    netconvert = sumo_binary("netconvert")
    inputs = {"nod": plan.nodes_xml(), "edg": plan.edges_xml(), "con": plan.connections_xml()}
    digest = hashlib.sha256("\0".join([*inputs.values(), *NETCONVERT_OPTIONS, str(netconvert)]).encode())
    folder = cache_dir / "sumo" / digest.hexdigest()[:16]
    net = folder / "corridor.net.xml"
    if net.is_file():
        return BuiltNetwork(plan, net, cached=True)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, text in inputs.items():
        (folder / f"corridor.{kind}.xml").write_text(text, encoding="utf-8")
    # written beside, then renamed: a build cut short never passes for a cached network
    fd, tmp = tempfile.mkstemp(suffix=".net.xml", dir=folder)
    os.close(fd)
    cmd = [str(netconvert), "-n", str(folder / "corridor.nod.xml"), "-e", str(folder / "corridor.edg.xml"),
           "-x", str(folder / "corridor.con.xml"), "-o", tmp, *NETCONVERT_OPTIONS, "--no-warnings"]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, preexec_fn=preexec)
    except subprocess.TimeoutExpired:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError("netconvert did not finish the corridor's network within 120 s") from None
    if done.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"netconvert failed on the corridor's network: {last[0]}")
    os.replace(tmp, net)
    return BuiltNetwork(plan, net, cached=False)
