"""Who may do what on the radio link: the MQTT identities of a secure stack and their grants.

The broker's Dynamic Security plugin holds them: the plugin refuses a SUBSCRIBE its role does not
grant (Mosquitto's `acl_file` grants every subscription and only filters delivery, which let any
client join `$share/gateways`, be dealt a share of the corridor's telemetry and lose it), and it
takes new clients while it runs, so vehicles are enrolled as they come. Its ACLs have no `%u`
substitution (Mosquitto 2.0), so each vehicle has a role of its own naming its id.

- the gateways (one identity, `corridor-gateway`): the only `$share` subscribers of the uplink, and the
  only publishers of advisories;
- a vehicle (username = its vehicle id): publishes its own telemetry and hazard reports, in any
  region (it drives through all of them), subscribes to its own advisory topic and to the regions'
  broadcasts (the broker cannot know which region a vehicle is in; which broadcast it hears is no
  secret);
- the enrolment admin (`corridor-mqtt-admin`): the plugin's control topic, nothing else.

A vehicle's password is derived from the fleet's provisioning key and its id (HMAC-SHA256), as a
manufacturer provisions a unit: whoever holds the key enrols vehicles, a vehicle knows only its own.
Pure: the broker's files and the enrolment's messages are built here, sent elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.shared.radio_topics import RadioTopics

__all__ = [
    "MQTT_ADMIN", "MQTT_GATEWAY", "MqttAccess", "MqttGrant", "check_vehicle_id", "dynsec_config", "dynsec_password",
    "enrol_commands", "gateway_grants", "mqtt_policy_rows", "revoke_commands", "vehicle_grants", "vehicle_password",
]  # fmt: skip

MQTT_ADMIN = "corridor-mqtt-admin"
MQTT_GATEWAY = "corridor-gateway"
RESERVED = (MQTT_ADMIN, MQTT_GATEWAY)
#: Mosquitto's own choice for its password hashes (PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt)
ITERATIONS = 101
CONTROL = "$CONTROL/dynamic-security/#"
#: a vehicle id's length at most: corridor's ids are 11 characters; the bound keeps an operator's typo
#: or a hostile id out of the plugin's file and the revocation list
MAX_VEHICLE_ID = 64


@dataclass(frozen=True, slots=True)
class MqttGrant:
    who: str
    acltype: str  # the plugin's: publishClientSend | subscribeLiteral | subscribePattern | publishClientReceive
    topic: str
    why: str


@dataclass(frozen=True, slots=True)
class MqttAccess:
    """The broker, and who to be there (anonymous and in clear in plain mode)."""

    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None

    @property
    def secure(self) -> bool:
        return self.ca_file is not None

    def as_vehicle(self, vehicle_id: str, key: bytes) -> MqttAccess:
        return MqttAccess(self.host, self.port, vehicle_id, vehicle_password(key, vehicle_id), self.ca_file)


def vehicle_password(key: bytes, vehicle_id: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, vehicle_id.encode(), hashlib.sha256).digest()).decode()[:32]


def dynsec_password(password: str, salt: bytes) -> dict[str, Any]:
    """A client's password as the plugin stores it."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return {"password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": ITERATIONS}  # fmt: skip


def gateway_grants(topics: RadioTopics) -> list[MqttGrant]:
    g = MQTT_GATEWAY
    return [
        *(MqttGrant(g, "subscribePattern", f"$share/gateways/{topics.every(k)}", f"share the vehicles' {k}")
          for k in ("telemetry", "hazards")),
        *(MqttGrant(g, "subscribePattern", topics.every(k), f"the vehicles' {k}, as a shared subscription")
          for k in ("telemetry", "hazards")),
        MqttGrant(g, "publishClientSend", topics.every_vehicle_advisories(), "advisories to one vehicle"),
        MqttGrant(g, "publishClientSend", topics.every("advisories"), "advisories to a region"),
    ]  # fmt: skip


def vehicle_grants(topics: RadioTopics, vehicle_id: str) -> list[MqttGrant]:
    v = vehicle_id
    return [
        MqttGrant(v, "publishClientSend", topics.telemetry(0, v).replace("/region/0/", "/region/+/"), "its telemetry"),
        MqttGrant(v, "publishClientSend", topics.hazards(0, v).replace("/region/0/", "/region/+/"),
                  "its hazard reports"),
        MqttGrant(v, "subscribeLiteral", topics.vehicle_advisories(v), "its own advisories"),
        MqttGrant(v, "subscribePattern", topics.every("advisories"), "its region's broadcast advisories"),
    ]  # fmt: skip


def _acls(grants: Iterable[MqttGrant]) -> list[dict[str, Any]]:
    return [{"acltype": g.acltype, "topic": g.topic, "allow": True} for g in grants]


def dynsec_config(topics: RadioTopics, admin_password: str, gateway_password: str,
                  salt: Callable[[int], bytes] = os.urandom, vehicles: Iterable[str] = (),
                  key: bytes = b"", revoked: Iterable[str] = ()) -> dict[str, Any]:  # fmt: skip
    """The plugin's starting file: the admin, the gateways, and `vehicles` enrolled beforehand with
    their passwords from `key` (the plugin rewrites its whole file after each command it takes, so
    enrolling thousands while it runs grows as their square: 3,600 took 131 s); by default nothing
    is granted. A `revoked` vehicle is there too, disabled, so that no enrolment can create it again:
    its password still derives from the key, and the unit that held it may be in anyone's hands."""
    revoked = set(revoked)
    admin = [MqttGrant(MQTT_ADMIN, t, CONTROL, "enrol vehicles") for t in
             ("publishClientSend", "publishClientReceive", "subscribePattern")]  # fmt: skip
    commands = enrol_commands(topics, [*dict.fromkeys([*vehicles, *sorted(revoked)])], key)
    clients = [{"username": c["username"], **dynsec_password(c["password"], salt(12)), "roles": c["roles"],
                **({"disabled": True} if c["username"] in revoked else {})}
               for c in commands if c["command"] == "createClient"]  # fmt: skip
    roles = [{"rolename": c["rolename"], "acls": c["acls"]} for c in commands if c["command"] == "createRole"]
    return {
        "clients": [
            {"username": MQTT_ADMIN, **dynsec_password(admin_password, salt(12)), "roles": [{"rolename": MQTT_ADMIN}]},
            {"username": MQTT_GATEWAY, **dynsec_password(gateway_password, salt(12)),
             "roles": [{"rolename": MQTT_GATEWAY}]},
            *clients,
        ],
        "roles": [
            {"rolename": MQTT_ADMIN, "acls": _acls(admin)},
            {"rolename": MQTT_GATEWAY, "acls": _acls(gateway_grants(topics))},
            *roles,
        ],
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True, "subscribe": False,
                             "unsubscribe": True},
    }  # fmt: skip


def check_vehicle_id(topics: RadioTopics, vid: str) -> None:
    """ValueError for an id no vehicle can hold: reserved, too long, unprintable or spaced (it is a
    line of the revocation list), or not an MQTT topic level."""
    if vid in RESERVED or vid.startswith("corridor-"):
        raise ValueError(f"{vid!r} is a reserved MQTT identity, not a vehicle's")
    if len(vid) > MAX_VEHICLE_ID or not vid.isprintable() or any(c.isspace() for c in vid):
        raise ValueError(f"{vid[:40]!r} is not a vehicle id: printable, no spaces, {MAX_VEHICLE_ID} characters at most")
    topics.vehicle_advisories(vid)


def enrol_commands(topics: RadioTopics, vehicle_ids: Iterable[str], key: bytes) -> list[dict[str, Any]]:
    """The plugin's commands that enrol these vehicles: a role naming each one's topics, and a
    client with its password (ValueError for an id that cannot be one: `check_vehicle_id`)."""
    out: list[dict[str, Any]] = []
    for vid in vehicle_ids:
        check_vehicle_id(topics, vid)
        acls = _acls(vehicle_grants(topics, vid))
        out.append({"command": "createRole", "rolename": vid, "acls": acls})
        out.append({"command": "createClient", "username": vid, "password": vehicle_password(key, vid),
                    "roles": [{"rolename": vid}]})  # fmt: skip
    return out


def revoke_commands(topics: RadioTopics, vehicle_ids: Iterable[str], key: bytes) -> list[dict[str, Any]]:
    """The plugin's commands that revoke these vehicles on a running broker: each is created first
    if the broker never saw it (its "already exists" is no error), then disabled, which also
    disconnects it if it is connected."""
    ids = list(dict.fromkeys(vehicle_ids))
    return [*enrol_commands(topics, ids, key), *({"command": "disableClient", "username": v} for v in ids)]


def mqtt_policy_rows(topics: RadioTopics) -> list[str]:
    """The MQTT principals as rows of the manual's principals table."""

    def cell(grants: list[MqttGrant]) -> str:
        verb = {"publishClientSend": "publish", "subscribeLiteral": "subscribe", "subscribePattern": "subscribe"}
        return "; ".join(f"{verb[g.acltype]} `{g.topic}`" for g in grants)

    vehicle = [MqttGrant("<id>", g.acltype, g.topic.replace("veh-id", "<id>"), g.why)
               for g in vehicle_grants(topics, "veh-id")]  # fmt: skip
    return [
        f"| MQTT `{MQTT_GATEWAY}` | {cell(gateway_grants(topics))} | none |",
        f"| MQTT vehicle `<id>` (its vehicle id) | {cell(vehicle)} | none |",
        f"| MQTT `{MQTT_ADMIN}` | enrols vehicles: `{CONTROL}` only | none |",
    ]
