"""A tower's tunables, read once at the app's edge from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pipeline.shared.errors import ConfigError

__all__ = [
    "APP_ENV_VARS", "TABLE_NAMES", "TowerConfig", "WorkerSettings", "app_id", "changelog_topics", "tower_env_vars",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class TowerConfig:
    #: a vehicle silent this long (event time) leaves its region's swarm
    vehicle_ttl_s: float = 10.0
    #: hazards closer than this ahead of a vehicle (this region or the next downstream) trigger SLOW_DOWN
    lookahead_km: float = 3.0
    #: closer than this: STOP
    stop_km: float = 0.3
    #: speed advised just outside the stop zone, m/s (≈ 30 km/h); it rises linearly to the limit at lookahead_km
    approach_speed_mps: float = 8.0
    #: hazards that call for a reduced speed rather than a stop (ice; a work zone not closed): the
    #: advised speed holds from `lookahead_km` ahead until this far past the reported position
    reduced_extent_km: float = 1.0
    #: ice by severity: 1-3, 4-5 and 6-7 (80, 60 and 40 km/h)
    ice_light_mps: float = 80 / 3.6
    ice_mps: float = 60 / 3.6
    ice_severe_mps: float = 40 / 3.6
    #: a work zone: Indiana's usual posted work-zone limit, 45 mph; severity 7 (closed) stops traffic
    work_zone_speed_mps: float = 45 * 0.44704
    #: a blocking hazard (obstacle, animal, accident, ...) of severity up to this only slows traffic
    #: to this speed (on the shoulder, say); above it, traffic stops before it
    minor_severity: int = 2
    minor_speed_mps: float = 60 / 3.6
    #: lanes per carriageway (the corridor's narrowest stretch), and the speed to pass a hazard that
    #: leaves some of them open
    lanes: int = 2
    lane_closed_speed_mps: float = 60 / 3.6
    #: a vehicle slower than this counts as stopped (m/s)
    stopped_mps: float = 2.0
    #: at least this many stopped vehicles within `queue_span_km` make a queue (a derived hazard)
    queue_min_vehicles: int = 3
    queue_span_km: float = 0.5
    #: SPEED_UP when a vehicle runs below this share of its carriageway's mean speed with a clear road
    slow_share: float = 0.6
    #: … and the road counts as clear when the next vehicle ahead is further than both of these
    clear_gap_m: float = 150.0
    clear_headway_s: float = 4.0
    #: the same advice to the same vehicle is not repeated within this long (event time)
    cooldown_s: float = 5.0
    #: how long an advisory stays valid after issue (event time)
    advisory_validity_s: float = 10.0
    #: no advice on a trigger (a vehicle's message, a hazard report) sent longer ago than this (wall
    #: clock): a tower catching up on a backlog, after a takeover say, would advise from positions out
    #: of date by then; the vehicle's next message brings it fresh advice
    max_trigger_age_s: float = 10.0
    #: largest believable speed; above it a record is dead-lettered (400 km/h)
    max_speed_mps: float = 400 / 3.6
    #: how far a position may lie outside the route before it is "off the corridor" (km)
    off_route_km: float = 0.5
    #: refuse records stamped further than this ahead of the tower's clock (ms)
    max_clock_drift_ms: int = 5_000
    #: a departed vehicle's tombstone is forgotten this long after it was written (s); an update
    #: older than that which still arrives (a replay) is expired again at the next flush
    tombstone_horizon_s: float = 120.0
    #: write table changes (changelog) at most this often (s, wall time): about one telemetry period
    flush_interval_s: float = 1.0
    #: tower-sync: important class (hazards, braking alerts, membership counts), s
    sync_important_s: float = 1.0
    #: tower-sync: unimportant class (speed, fuel, density aggregates), s
    sync_unimportant_s: float = 10.0

    def __post_init__(self) -> None:
        """Values the rules cannot work with are refused here, with the variable that sets them,
        rather than by a traceback at the first message."""
        for f in fields(self):
            value, zero_ok = getattr(self, f.name), f.name in _MAY_BE_ZERO
            if not (value >= 0 if zero_ok else value > 0):  # NaN fails both
                bound = "0 or more" if zero_ok else "above 0"
                raise ConfigError(f"CORRIDOR_TOWER_{f.name.upper()}={value!r}: must be {bound}")
        if self.stop_km >= self.lookahead_km:
            raise ConfigError(f"CORRIDOR_TOWER_STOP_KM={self.stop_km!r}: must be below CORRIDOR_TOWER_LOOKAHEAD_KM "
                              f"({self.lookahead_km!r}): the stop zone lies inside the warning distance")  # fmt: skip
        if not self.approach_speed_mps <= self.max_speed_mps:
            raise ConfigError(f"CORRIDOR_TOWER_APPROACH_SPEED_MPS={self.approach_speed_mps!r}: above the largest "
                              f"believable speed ({self.max_speed_mps!r})")  # fmt: skip

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TowerConfig:
        """Each field can be set as CORRIDOR_TOWER_<FIELD> (upper case), e.g. CORRIDOR_TOWER_VEHICLE_TTL_S=5."""
        env = os.environ if env is None else env
        d = cls()
        kinds = {f.name: int if f.type in (int, "int") else float for f in fields(cls)}
        return cls(**{name: env_number(env, f"CORRIDOR_TOWER_{name.upper()}", kind, getattr(d, name))
                      for name, kind in kinds.items()})  # fmt: skip


#: the tunables for which 0 means something (no repeat hold-back, no minor class, no margin)
_MAY_BE_ZERO = frozenset({"cooldown_s", "minor_severity", "reduced_extent_km", "off_route_km"})


def env_number(
    env: Mapping[str, str],
    name: str,
    kind: type[int] | type[float],
    default: float,
    low: float = 0,
    high: float = float("inf"),
) -> Any:
    """A number from the environment (`default` when unset or empty), or a one-line error naming it."""
    raw = env.get(name, "")
    if raw == "":
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} is outside {low:g}–{high:g}")
    return value


#: What the worker process (towers/app.py) reads besides TowerConfig's fields, with what each sets.
APP_ENV_VARS: dict[str, str] = {
    "CORRIDOR_TOWER_WEB_PORT": "port of the worker's web pages (/corridor/state/, /corridor/ready/; default 6066)",
    "CORRIDOR_TOWER_WEB_BIND": "address the web pages bind (default 127.0.0.1; 0.0.0.0 in containers)",
    "CORRIDOR_TOWER_APP_SUFFIX": "appended to the app id: a second, independent set of towers over the same topics",
    "CORRIDOR_TOWER_OFFSET_RESET": "where a new consumer group starts: earliest (default) or latest",
    "CORRIDOR_TOWER_ETCD": "0 turns the etcd control plane off (default 1)",
    "CORRIDOR_TOWER_STORE": "Faust table store URL (default rocksdb://)",
    "CORRIDOR_TOWER_STANDBYS": "standby replicas of each table on other workers (default 0)",
    "CORRIDOR_TOWER_SESSION_TIMEOUT_S": "a silent worker's regions move to the others after this long (default 10)",
    "CORRIDOR_TOWER_HEARTBEAT_S": "consumer group heartbeat interval (default 3)",
    "CORRIDOR_TOWER_CAS_HISTORY": "1 keeps every compare-and-swap on etcd's global view for a linearizability "
    "check (/corridor/cas-history/; default 0)",
    "CORRIDOR_TOWER_CONTROL_TOKEN": "turns the drill switches on (POST /corridor/control/{sync|etcd}/{on|off}/ "
    "with 'Authorization: Bearer <token>'); at least 16 characters; unset (the default): no switches",
}


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How the worker process runs (the variables of `APP_ENV_VARS`), read once when it starts."""

    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    app_suffix: str = ""
    offset_reset: str = "earliest"
    etcd: bool = True
    store: str = "rocksdb://"
    standbys: int = 0
    session_timeout_s: float = 10.0
    heartbeat_s: float = 3.0
    cas_history: bool = False
    control_token: str = ""

    def __repr__(self) -> str:  # the token stays out of logs
        return f"WorkerSettings(web={self.web_bind}:{self.web_port}, switches={'on' if self.control_token else 'off'})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        d = cls()

        reset = env.get("CORRIDOR_TOWER_OFFSET_RESET", "") or "earliest"
        if reset not in ("earliest", "latest"):
            raise ConfigError(f"CORRIDOR_TOWER_OFFSET_RESET={reset!r}: choose earliest or latest")
        etcd = env.get("CORRIDOR_TOWER_ETCD", "") or "1"
        if etcd not in ("0", "1"):
            raise ConfigError(f"CORRIDOR_TOWER_ETCD={etcd!r}: 1 (the default) or 0 to run without etcd")
        history = env.get("CORRIDOR_TOWER_CAS_HISTORY", "") or "0"
        if history not in ("0", "1"):
            raise ConfigError(f"CORRIDOR_TOWER_CAS_HISTORY={history!r}: 0 (the default) or 1")
        session = env_number(env, "CORRIDOR_TOWER_SESSION_TIMEOUT_S", float, d.session_timeout_s, 1, 3600)
        heartbeat = env_number(env, "CORRIDOR_TOWER_HEARTBEAT_S", float, d.heartbeat_s, 0.1, 3600)
        if heartbeat >= session:
            raise ConfigError("CORRIDOR_TOWER_HEARTBEAT_S must be shorter than CORRIDOR_TOWER_SESSION_TIMEOUT_S")
        token = env.get("CORRIDOR_TOWER_CONTROL_TOKEN", "")
        if token and (len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token):
            raise ConfigError("CORRIDOR_TOWER_CONTROL_TOKEN must be at least 16 printable ASCII characters, no spaces")
        return cls(
            web_port=env_number(env, "CORRIDOR_TOWER_WEB_PORT", int, d.web_port, 1, 65535),
            web_bind=env.get("CORRIDOR_TOWER_WEB_BIND", "") or d.web_bind,
            app_suffix=env.get("CORRIDOR_TOWER_APP_SUFFIX", ""),
            offset_reset=reset,
            etcd=etcd == "1",
            store=env.get("CORRIDOR_TOWER_STORE", "") or d.store,
            standbys=env_number(env, "CORRIDOR_TOWER_STANDBYS", int, d.standbys, 0, 8),
            session_timeout_s=session,
            heartbeat_s=heartbeat,
            cas_history=history == "1",
            control_token=token,
        )


def tower_env_vars() -> set[str]:
    """Every variable a tower worker reads of its own (Kafka, etcd and topics: pipeline.shared.config)."""
    return set(APP_ENV_VARS) | {f"CORRIDOR_TOWER_{f.name.upper()}" for f in fields(TowerConfig)}


#: The towers' Faust tables, each backed by a changelog topic partitioned like the telemetry.
TABLE_NAMES = ("members", "vehicles", "hazards")


def app_id(topic_prefix: str, suffix: str = "") -> str:
    """The towers' Faust app id: it names their consumer group and their tables' changelogs."""
    return f"{topic_prefix}-towers{suffix}"


def changelog_topics(app: str) -> list[str]:
    """The changelog topic of each table, as Faust names them."""
    return [f"{app}-{table}-changelog" for table in TABLE_NAMES]
