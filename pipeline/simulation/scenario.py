"""Scenario files: what to simulate and which events to play, validated with one-line errors. Pure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipeline.shared.bounds import id_problem
from pipeline.shared.errors import ConfigError
from pipeline.shared.hazards import CAUSE_CODES
from producers.fleet import LANES

__all__ = ["MAX_UPDATES_PER_S", "Event", "Scenario", "builtin_scenarios", "load_scenario"]

#: What a whole run sustains in real time on a 2-core machine (broker, etcd, the fleet and two tower
#: workers together): 18,000 vehicles at 10 Hz kept up here, 180,000 updates/s (`corridor bench
#: --only peak` probes this knee). A scenario asking for more would only measure a backlog.
MAX_UPDATES_PER_S = 180_000
#: Over the radio link every update is an MQTT message, sent by the fleet's radios, relayed by the
#: broker and received by a gateway (13 µs of its CPU each: 44,000/s in `bench --only mqtt`), all on
#: the same two cores as Kafka and the towers: the default scenario's 14,400/s ran in real time with
#: nothing lost (docs/radio-link.md), and this leaves it a little room.
MAX_RADIO_UPDATES_PER_S = 16_000
RADIOS = ("kafka", "mqtt")
TRAFFIC = ("builtin", "sumo")  # the fleet model that moves the vehicles
EVENT_KINDS = ("hazard", "clear", "kill_worker", "restart_worker", "stop_etcd")


@dataclass(frozen=True, slots=True)
class Event:
    at_s: float
    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    vehicles: int
    hz: float
    speedup: float
    duration_s: float
    workers: int
    seed: int
    events: tuple[Event, ...]
    radio: str = "kafka"  # how vehicles send: straight to Kafka, or MQTT to their tower's gateway
    cam: bool = False  # `hz: cam`: ETSI CAM generation rules (at most 10 Hz, at least 1 Hz) instead of a rate
    vehicle_hazards: bool = False  # vehicles report the queues and hard stops they find (producers/denm.py)
    traffic: str = "builtin"  # who moves the vehicles: corridor's own fleet model, or SUMO (producers/sumo/)
    sumo_cfg: str | None = None  # a user's own SUMO scenario (.sumocfg) moves the vehicles (traffic: sumo)
    obey_advice: bool = True  # False: vehicles ignore the towers' advice (what the advice changes, by its absence)
    analytics: bool = False  # the Spark job runs beside it; the report adds corridor-wide figures

    @property
    def wall_s(self) -> float:
        return self.duration_s / self.speedup

    @property
    def updates_per_s(self) -> float:
        return self.vehicles * self.hz * self.speedup


def builtin_scenarios() -> dict[str, Path]:
    folder = Path(str(resources.files("pipeline.simulation").joinpath("scenarios")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _need(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _event(raw: Any, i: int, where: str, duration: float, workers: int) -> Event:
    at = f"{where}: event {i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a mapping")
    at_s = float(_need(raw, "at_s", (int, float), at))
    if not 0 <= at_s <= duration:
        raise ConfigError(f"{at}: at_s {at_s} is outside the run (0–{duration:g} s)")
    kinds = [k for k in EVENT_KINDS if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"{at}: give exactly one of {', '.join(EVENT_KINDS)}")
    kind = kinds[0]
    value = raw[kind]
    if kind == "hazard":
        if not isinstance(value, dict):
            raise ConfigError(f"{at}: hazard needs km, type and id")
        km = float(_need(value, "km", (int, float), at))
        htype = str(value.get("type", "OBSTACLE")).upper()
        if htype not in CAUSE_CODES:
            raise ConfigError(f"{at}: unknown hazard type {htype!r}; choose from {', '.join(CAUSE_CODES)}")
        direction = str(value.get("direction", "BOTH")).upper()
        if direction not in ("NORTHBOUND", "SOUTHBOUND", "BOTH"):
            raise ConfigError(f"{at}: direction must be NORTHBOUND, SOUTHBOUND or BOTH")
        lanes = value.get("lanes", [])
        if not isinstance(lanes, list) or any(not isinstance(ln, int) or not 0 <= ln < LANES for ln in lanes):
            raise ConfigError(f"{at}: lanes must list lane numbers 0–{LANES - 1} (0 = the right-hand lane)")
        if len(set(lanes)) == LANES:
            lanes = []  # every lane: the same as naming none
        relevance = value.get("relevance_m", 0)
        if not isinstance(relevance, int) or not 0 <= relevance <= 20_000:
            raise ConfigError(f"{at}: relevance_m must be whole metres, 0–20000")
        args = {"km": km, "type": htype, "direction": direction, "id": str(_need(value, "id", str, at)),
                "severity": int(value.get("severity", 6)), "lanes": sorted(set(lanes)), "relevance_m": relevance,
                "sub_cause": int(value.get("sub_cause", 0))}  # fmt: skip
        if (problem := id_problem(args["id"], "hazard id")) is not None:
            raise ConfigError(f"{at}: {problem}")
    elif kind == "clear":
        args = {"id": str(value)}
    elif kind in ("kill_worker", "restart_worker"):
        if not isinstance(value, int) or not 0 <= value < workers:
            raise ConfigError(f"{at}: {kind} takes a worker index 0–{workers - 1}")
        args = {"worker": value}
    else:  # stop_etcd
        if not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{at}: stop_etcd takes a duration in seconds")
        args = {"seconds": float(value)}
    return Event(at_s, kind, args)


def parse_scenario(data: Any, source: str) -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a scenario is a YAML mapping")
    vehicles = _need(data, "vehicles", int, source)
    cam = data.get("hz") == "cam"
    hz = 10.0 if cam else float(_need(data, "hz", (int, float), source))  # with CAM: its most, for the limits
    speedup = float(_need(data, "speedup", (int, float), source))
    duration = float(_need(data, "duration_s", (int, float), source))
    workers = int(data.get("workers", 2))
    if not 1 <= vehicles <= 100_000:
        raise ConfigError(f"{source}: vehicles must be 1–100,000, got {vehicles}")
    if not 0 < hz <= 10:
        raise ConfigError(f"{source}: hz must be above 0 and at most 10 (CAM), got {hz:g}")
    if not 0 < speedup <= 60 or duration <= 0:
        raise ConfigError(f"{source}: speedup must be in (0, 60] and duration_s positive")
    if not 1 <= workers <= 8:
        raise ConfigError(f"{source}: workers must be 1–8")
    rate = vehicles * hz * speedup
    if rate > MAX_UPDATES_PER_S:
        raise ConfigError(
            f"{source}: {vehicles:,} vehicles × {hz:g} Hz × speedup {speedup:g} = {rate:,.0f} updates/s; this "
            f"machine's towers sustain about {MAX_UPDATES_PER_S:,}/s: lower vehicles, hz or speedup"
        )
    radio = str(data.get("radio", "kafka"))
    if radio not in RADIOS:
        raise ConfigError(f"{source}: radio must be one of {', '.join(RADIOS)}, got {radio!r}")
    if radio == "mqtt" and rate > MAX_RADIO_UPDATES_PER_S:
        raise ConfigError(
            f"{source}: {rate:,.0f} updates/s over MQTT; a run on this machine carries about "
            f"{MAX_RADIO_UPDATES_PER_S:,}/s over the radio (a message per update): lower vehicles, hz or speedup"
        )
    traffic = str(data.get("traffic", "builtin"))
    if traffic not in TRAFFIC:
        raise ConfigError(f"{source}: traffic must be one of {', '.join(TRAFFIC)}, got {traffic!r}")
    sumo_cfg = data.get("sumo_cfg")
    if sumo_cfg is not None and (not isinstance(sumo_cfg, str) or not sumo_cfg.endswith(".sumocfg")):
        raise ConfigError(f"{source}: sumo_cfg must be the path of a .sumocfg file, got {sumo_cfg!r}")
    if sumo_cfg is not None:
        traffic = "sumo"
    obey_advice = data.get("obey_advice", True)
    if not isinstance(obey_advice, bool):
        raise ConfigError(f"{source}: obey_advice must be true or false, got {obey_advice!r}")
    vehicle_hazards = data.get("vehicle_hazards", False)
    if not isinstance(vehicle_hazards, bool):
        raise ConfigError(f"{source}: vehicle_hazards must be true or false, got {vehicle_hazards!r}")
    analytics = data.get("analytics", False)
    if not isinstance(analytics, bool):
        raise ConfigError(f"{source}: analytics must be true or false, got {analytics!r}")
    events = data.get("events", []) or []
    if not isinstance(events, list):
        raise ConfigError(f"{source}: 'events' must be a list")
    parsed = tuple(sorted((_event(e, i, source, duration, workers) for i, e in enumerate(events)),
                          key=lambda e: e.at_s))  # fmt: skip
    return Scenario(
        name=str(data.get("name", Path(source).stem)), description=str(data.get("description", "")),
        vehicles=vehicles, hz=hz, speedup=speedup, duration_s=duration, workers=workers,
        seed=int(data.get("seed", 7)), events=parsed, radio=radio, cam=cam, vehicle_hazards=vehicle_hazards,
        analytics=analytics, traffic=traffic, obey_advice=obey_advice, sumo_cfg=sumo_cfg,
    )  # fmt: skip


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a YAML file by path."""
    builtins = builtin_scenarios()
    path = builtins.get(name_or_path) or Path(name_or_path)
    if name_or_path not in builtins and not (os.sep in name_or_path or path.suffix in (".yaml", ".yml")):
        raise ConfigError(f"unknown scenario {name_or_path!r}; built in: {', '.join(builtins)} (or a .yaml path)")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"scenario file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_scenario(data, str(path))


def with_cam(sc: Scenario) -> Scenario:
    """The scenario with CAM generation rules instead of its rate (`corridor simulate --cam`),
    judged against the machine's limits at the rules' most: 10 Hz."""
    rate = sc.vehicles * 10.0 * sc.speedup
    limit = MAX_RADIO_UPDATES_PER_S if sc.radio == "mqtt" else MAX_UPDATES_PER_S
    if rate > limit:
        raise ConfigError(f"{sc.name} with CAM: up to {rate:,.0f} updates/s, more than the {limit:,}/s this machine "
                          "sustains: lower vehicles or speedup")  # fmt: skip
    return replace(sc, cam=True, hz=10.0)


def over_radio(sc: Scenario, radio: str) -> Scenario:
    """The scenario with its vehicles sending over `radio` instead (`corridor simulate --radio`)."""
    if radio not in RADIOS:
        raise ConfigError(f"--radio {radio!r}: choose from {', '.join(RADIOS)}")
    if radio == "mqtt" and sc.updates_per_s > MAX_RADIO_UPDATES_PER_S:
        raise ConfigError(
            f"{sc.name}: {sc.updates_per_s:,.0f} updates/s over MQTT; a run on this machine carries about "
            f"{MAX_RADIO_UPDATES_PER_S:,}/s over the radio (a message per update): lower vehicles, hz or speedup"
        )
    return replace(sc, radio=radio)


def with_traffic(sc: Scenario, traffic: str, sumo_cfg: str | None = None) -> Scenario:
    """The scenario with its vehicles moved by `traffic` instead (`corridor simulate --traffic`), or by
    a user's own SUMO scenario (`--sumo-cfg`)."""
    if traffic not in TRAFFIC:
        raise ConfigError(f"--traffic {traffic!r}: choose from {', '.join(TRAFFIC)}")
    if sumo_cfg is not None:
        if traffic != "sumo":
            raise ConfigError(f"--sumo-cfg {sumo_cfg}: a SUMO scenario moves the vehicles; drop --traffic {traffic}")
        if not sumo_cfg.endswith(".sumocfg"):
            raise ConfigError(f"--sumo-cfg {sumo_cfg}: give a SUMO configuration file (.sumocfg)")
    return replace(sc, traffic=traffic, sumo_cfg=sumo_cfg)
