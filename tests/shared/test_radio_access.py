"""The radio link's identities: the broker's files and enrolment commands, built without a broker."""

from __future__ import annotations

import base64

import pytest

from pipeline.shared.radio_access import (
    MQTT_ADMIN,
    MQTT_GATEWAY,
    dynsec_config,
    dynsec_password,
    enrol_commands,
    revoke_commands,
    vehicle_grants,
    vehicle_password,
)  # fmt: skip
from pipeline.shared.radio_topics import RadioTopics

TOPICS = RadioTopics(regions=9)


def test_a_password_is_hashed_as_mosquitto_hashes_it() -> None:
    """A vector from `mosquitto_ctrl dynsec init` (Mosquitto 2.0.11): password `adminpw`."""
    salt = base64.b64decode("xO/ysD/04nN+yobe")
    got = dynsec_password("adminpw", salt)
    digest = "Lk/aewgg/pMeIGeXl3iZW1VwdGgkUhMYBzku98TAPLFWrTloS+MG6u+aHpgqbV3Dmm4cuy2hUReMX0/tJPZRUw=="
    assert got == {"password": digest, "salt": "xO/ysD/04nN+yobe", "iterations": 101}


def test_a_vehicle_is_granted_its_own_topics_and_the_broadcasts_and_nothing_else() -> None:
    grants = {(g.acltype, g.topic) for g in vehicle_grants(TOPICS, "veh-0000007")}
    assert grants == {
        ("publishClientSend", "corridor/v2/region/+/telemetry/veh-0000007"),
        ("publishClientSend", "corridor/v2/region/+/hazards/veh-0000007"),
        ("subscribeLiteral", "corridor/v2/vehicle/veh-0000007/advisories"),
        ("subscribePattern", "corridor/v2/region/+/advisories"),
    }


def test_the_starting_file_holds_the_admin_and_the_gateways_and_grants_nothing_by_default() -> None:
    config = dynsec_config(TOPICS, "a", "g", salt=lambda n: b"\0" * n)
    assert [c["username"] for c in config["clients"]] == [MQTT_ADMIN, MQTT_GATEWAY]
    assert all("a" != c["password"] != "g" for c in config["clients"]), "hashes, never the passwords"
    default = config["defaultACLAccess"]
    assert default["publishClientSend"] is False and default["subscribe"] is False
    shared = [a["topic"] for r in config["roles"] for a in r["acls"] if a["topic"].startswith("$share/")]
    assert shared and all(t.startswith("$share/gateways/") for t in shared)
    assert {r["rolename"] for r in config["roles"] if any(a["topic"] in shared for a in r["acls"])} == {MQTT_GATEWAY}


def test_enrolment_names_each_vehicles_role_and_password_and_refuses_what_cannot_be_a_vehicle() -> None:
    commands = enrol_commands(TOPICS, ["veh-1", "veh-2"], b"k" * 32)
    named = [(c["command"], c.get("rolename") or c["username"]) for c in commands]
    assert named == [("createRole", "veh-1"), ("createClient", "veh-1"), ("createRole", "veh-2"),
                     ("createClient", "veh-2")]  # fmt: skip
    assert commands[1]["password"] == vehicle_password(b"k" * 32, "veh-1") != vehicle_password(b"k" * 32, "veh-2")
    assert vehicle_password(b"j" * 32, "veh-1") != vehicle_password(b"k" * 32, "veh-1"), "the key makes it"
    for bad in (MQTT_GATEWAY, MQTT_ADMIN, "corridor-anything", "veh/1", "+", "#", "", "veh 1", "veh-1\nveh-2",
                "veh-\x00", "v" * 65):  # fmt: skip
        with pytest.raises(ValueError):
            enrol_commands(TOPICS, [bad], b"k" * 32)


def test_a_fleet_known_beforehand_is_in_the_starting_file_with_its_roles_and_hashed_passwords() -> None:
    key = b"k" * 32
    config = dynsec_config(TOPICS, "a", "g", salt=lambda n: b"\0" * n, vehicles=["veh-1", "veh-2"], key=key)
    clients = {c["username"]: c for c in config["clients"]}
    assert set(clients) == {MQTT_ADMIN, MQTT_GATEWAY, "veh-1", "veh-2"}
    assert clients["veh-1"]["roles"] == [{"rolename": "veh-1"}]
    assert clients["veh-1"]["password"] == dynsec_password(vehicle_password(key, "veh-1"), b"\0" * 12)["password"]
    role = next(r for r in config["roles"] if r["rolename"] == "veh-2")
    assert {(a["acltype"], a["topic"]) for a in role["acls"]} == {
        (g.acltype, g.topic) for g in vehicle_grants(TOPICS, "veh-2")}  # fmt: skip


def test_a_revoked_vehicle_is_in_every_starting_file_disabled_whether_the_fleet_names_it_or_not() -> None:
    key = b"k" * 32
    config = dynsec_config(TOPICS, "a", "g", salt=lambda n: b"\0" * n, vehicles=["veh-1", "veh-2"], key=key,
                           revoked=["veh-2", "veh-9"])  # fmt: skip
    clients = {c["username"]: c for c in config["clients"]}
    assert set(clients) == {MQTT_ADMIN, MQTT_GATEWAY, "veh-1", "veh-2", "veh-9"}
    assert [u for u, c in clients.items() if c.get("disabled")] == ["veh-2", "veh-9"]
    assert "disabled" not in clients["veh-1"]


def test_revoking_on_a_running_broker_creates_a_client_it_never_saw_then_disables_each() -> None:
    commands = revoke_commands(TOPICS, ["veh-3", "veh-4", "veh-3"], b"k" * 32)
    named = [(c["command"], c.get("rolename") or c["username"]) for c in commands]
    assert named == [("createRole", "veh-3"), ("createClient", "veh-3"), ("createRole", "veh-4"),
                     ("createClient", "veh-4"), ("disableClient", "veh-3"), ("disableClient", "veh-4")]  # fmt: skip
    with pytest.raises(ValueError):
        revoke_commands(TOPICS, [MQTT_GATEWAY], b"k" * 32)
