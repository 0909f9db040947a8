"""A tower's tunables, read once at the app's edge from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.shared.env_model import env_var, read_env

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]  # the tunables for which 0 means something (no hold-back, no margin)
PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]

__all__ = [
    "APP_ENV_VARS", "TABLE_NAMES", "TowerConfig", "WorkerSettings", "app_id", "changelog_topics", "tower_env_vars",
]  # fmt: skip


class TowerConfig(BaseModel):
    """The rules' tunables, each settable as CORRIDOR_TOWER_<FIELD> (upper case), e.g.
    CORRIDOR_TOWER_VEHICLE_TTL_S=5; a value the rules cannot work with is refused when read, naming
    its variable, rather than by a traceback at the first message."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, validate_by_name=True, validate_by_alias=True,
        alias_generator=lambda n: f"CORRIDOR_TOWER_{n.upper()}",
    )  # fmt: skip

    #: a vehicle silent this long (event time) leaves its region's swarm
    vehicle_ttl_s: Pos = 10.0
    #: hazards closer than this ahead of a vehicle (this region or the next downstream) trigger SLOW_DOWN
    lookahead_km: Pos = 3.0
    #: closer than this: STOP
    stop_km: Pos = 0.3
    #: speed advised just outside the stop zone, m/s (≈ 30 km/h); it rises linearly to the limit at lookahead_km
    approach_speed_mps: Pos = 8.0
    #: hazards that call for a reduced speed rather than a stop (ice; a work zone not closed): the
    #: advised speed holds from `lookahead_km` ahead until this far past the reported position
    reduced_extent_km: NonNeg = 1.0
    #: ice by severity: 1-3, 4-5 and 6-7 (80, 60 and 40 km/h)
    ice_light_mps: Pos = 80 / 3.6
    ice_mps: Pos = 60 / 3.6
    ice_severe_mps: Pos = 40 / 3.6
    #: a work zone: Indiana's usual posted work-zone limit, 45 mph; severity 7 (closed) stops traffic
    work_zone_speed_mps: Pos = 45 * 0.44704
    #: a blocking hazard (obstacle, animal, accident, ...) of severity up to this only slows traffic
    #: to this speed (on the shoulder, say); above it, traffic stops before it
    minor_severity: NonNegInt = 2
    minor_speed_mps: Pos = 60 / 3.6
    #: lanes per carriageway (the corridor's narrowest stretch), and the speed to pass a hazard that
    #: leaves some of them open
    lanes: PosInt = 2
    lane_closed_speed_mps: Pos = 60 / 3.6
    #: a vehicle slower than this counts as stopped (m/s)
    stopped_mps: Pos = 2.0
    #: at least this many stopped vehicles within `queue_span_km` make a queue (a derived hazard)
    queue_min_vehicles: PosInt = 3
    queue_span_km: Pos = 0.5
    #: SPEED_UP when a vehicle runs below this share of its carriageway's mean speed with a clear road
    slow_share: Pos = 0.6
    #: … and the road counts as clear when the next vehicle ahead is further than both of these
    clear_gap_m: Pos = 150.0
    clear_headway_s: Pos = 4.0
    #: the same advice to the same vehicle is not repeated within this long (event time)
    cooldown_s: NonNeg = 5.0
    #: how long an advisory stays valid after issue (event time)
    advisory_validity_s: Pos = 10.0
    #: no advice on a trigger (a vehicle's message, a hazard report) sent longer ago than this (wall
    #: clock): a tower catching up on a backlog, after a takeover say, would advise from positions out
    #: of date by then; the vehicle's next message brings it fresh advice. A second short of the
    #: advice's validity: the delivery budget of V2X through a network server (3GPP TS 22.185), so
    #: that advice decided at the bound still reaches its vehicle before it lapses
    max_trigger_age_s: Pos = 9.0
    #: largest believable speed; above it a record is dead-lettered (400 km/h)
    max_speed_mps: Pos = 400 / 3.6
    #: how far a position may lie outside the route before it is "off the corridor" (km)
    off_route_km: NonNeg = 0.5
    #: refuse records stamped further than this ahead of the tower's clock (ms)
    max_clock_drift_ms: PosInt = 5_000
    #: how long this host's clock must be seen off from every sender's before the tower corrects it (s):
    #: longer than a partition's move to another broker holds the senders' frames up
    clock_skew_hold_s: NonNeg = 60.0
    #: a departed vehicle's tombstone is forgotten this long after it was written (s); an update
    #: older than that which still arrives (a replay) is expired again at the next flush
    tombstone_horizon_s: Pos = 120.0
    #: write table changes (changelog) at most this often (s, wall time): about one telemetry period
    flush_interval_s: Pos = 1.0
    #: tower-sync: important class (hazards, braking alerts, membership counts), s
    sync_important_s: Pos = 1.0
    #: tower-sync: unimportant class (speed, fuel, density aggregates), s
    sync_unimportant_s: Pos = 10.0

    @model_validator(mode="after")
    def _coherent(self) -> TowerConfig:
        if self.stop_km >= self.lookahead_km:
            raise ValueError(f"CORRIDOR_TOWER_STOP_KM={self.stop_km!r}: must be below CORRIDOR_TOWER_LOOKAHEAD_KM "
                             f"({self.lookahead_km!r}): the stop zone lies inside the warning distance")  # fmt: skip
        if not self.approach_speed_mps <= self.max_speed_mps:
            raise ValueError(f"CORRIDOR_TOWER_APPROACH_SPEED_MPS={self.approach_speed_mps!r}: above the largest "
                             f"believable speed ({self.max_speed_mps!r})")  # fmt: skip
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TowerConfig:
        return read_env(cls, os.environ if env is None else env)


class WorkerSettings(BaseModel):
    """How the worker process runs, read once when it starts; each field's alias is its variable
    and its description what the variable sets (`corridor --help`, the manual)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_by_name=True,
                              validate_by_alias=True)  # fmt: skip

    # fmt: off
    web_port: int = env_var(6066, "CORRIDOR_TOWER_WEB_PORT", "port of the worker's web pages (/corridor/state/, "
                            "/corridor/ready/; default 6066)", ge=1, le=65535)
    web_bind: str = env_var("127.0.0.1", "CORRIDOR_TOWER_WEB_BIND",
                            "address the web pages bind (default 127.0.0.1; 0.0.0.0 in containers)")
    app_suffix: str = env_var("", "CORRIDOR_TOWER_APP_SUFFIX", "appended to the app id: a second, independent set of "
                              "towers over the same topics", pattern=r"^[A-Za-z0-9._-]*$")
    offset_reset: Literal["earliest", "latest"] = env_var(
        "earliest", "CORRIDOR_TOWER_OFFSET_RESET", "where a new consumer group starts: earliest (default) or latest")
    etcd: bool = env_var(True, "CORRIDOR_TOWER_ETCD", "0 turns the etcd control plane off (default 1)")
    store: str = env_var("rocksdb://", "CORRIDOR_TOWER_STORE", "Faust table store URL (default rocksdb://)")
    standbys: int = env_var(0, "CORRIDOR_TOWER_STANDBYS", "standby replicas of each table on other workers "
                            "(default 0)", ge=0, le=8)
    session_timeout_s: float = env_var(10.0, "CORRIDOR_TOWER_SESSION_TIMEOUT_S", "a silent worker's regions move to "
                                       "the others after this long (default 10)", ge=1, le=3600)
    heartbeat_s: float = env_var(3.0, "CORRIDOR_TOWER_HEARTBEAT_S", "consumer group heartbeat interval (default 3)",
                                 ge=0.1, le=3600)
    request_timeout_s: float | None = env_var(
        None, "CORRIDOR_TOWER_REQUEST_TIMEOUT_S", "how long the worker's Kafka clients wait for a broker's answer "
        "before trying the partition's new leader (default: Faust's, 90 s, and 20 min for the producer); at least "
        "the session timeout", ge=1, le=3600)
    cas_history: bool = env_var(False, "CORRIDOR_TOWER_CAS_HISTORY", "1 keeps every compare-and-swap on etcd's "
                                "global view for a linearizability check (/corridor/cas-history/; default 0)")
    control_token: str = env_var("", "CORRIDOR_TOWER_CONTROL_TOKEN", "turns the drill switches on (POST "
                                 "/corridor/control/{sync|etcd}/{on|off}/ with 'Authorization: Bearer <token>'); at "
                                 "least 16 characters; unset (the default): no switches", repr=False)
    # fmt: on

    @field_validator("control_token")
    @classmethod
    def _token(cls, token: str) -> str:
        if token and (len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token):
            raise ValueError("CORRIDOR_TOWER_CONTROL_TOKEN must be at least 16 printable ASCII characters, no spaces")
        return token

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> WorkerSettings:
        if self.heartbeat_s >= self.session_timeout_s:
            raise ValueError("CORRIDOR_TOWER_HEARTBEAT_S must be shorter than CORRIDOR_TOWER_SESSION_TIMEOUT_S")
        if self.request_timeout_s is not None and self.request_timeout_s < self.session_timeout_s:
            raise ValueError("CORRIDOR_TOWER_REQUEST_TIMEOUT_S must be at least CORRIDOR_TOWER_SESSION_TIMEOUT_S")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        return read_env(cls, os.environ if env is None else env)


#: What the worker process (towers/app.py) reads besides TowerConfig's fields, with what each sets.
APP_ENV_VARS: dict[str, str] = {str(f.alias): str(f.description) for f in WorkerSettings.model_fields.values()}


def tower_env_vars() -> set[str]:
    """Every variable a tower worker reads of its own (Kafka, etcd and topics: pipeline.shared.config)."""
    return set(APP_ENV_VARS) | {str(f.alias) for f in TowerConfig.model_fields.values()}


#: The towers' Faust tables, each backed by a changelog topic partitioned like the telemetry.
TABLE_NAMES = ("members", "vehicles", "hazards")


def app_id(topic_prefix: str, suffix: str = "") -> str:
    """The towers' Faust app id: it names their consumer group and their tables' changelogs."""
    return f"{topic_prefix}-towers{suffix}"


def changelog_topics(app: str) -> list[str]:
    """The changelog topic of each table, as Faust names them."""
    return [f"{app}-{table}-changelog" for table in TABLE_NAMES]
