"""Who a client is, how its configuration is built, and the least-privilege table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.shared.access import EtcdAccess, KafkaAccess, Role, client_conf
from pipeline.shared.access_policy import ETCD_GRANTS, kafka_grants, towers_prefix
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError
from pipeline.shared.topics import Topics
from towers.config import app_id, changelog_topics

TOPICS = Topics(regions=9, prefix="corridor")


def _material(tmp_path: Path) -> Path:
    folder = tmp_path / "security"
    folder.mkdir()
    users = {r.value: {"username": r.value, "password": f"pw-of-{r.value}"} for r in Role}
    (folder / "credentials.json").write_text(json.dumps(users))
    return folder


def test_a_plain_client_gets_only_the_bootstrap_servers() -> None:
    assert client_conf("k:9092", {"acks": "all"}) == {"bootstrap.servers": "k:9092", "acks": "all"}
    assert client_conf(KafkaAccess("k:9092")) == {"bootstrap.servers": "k:9092"}


def test_a_secure_client_presents_its_role_and_trusts_the_stacks_ca(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secure=True)
    _material(tmp_path)
    conf = client_conf(settings.kafka(Role.TOWER), {"group.id": "g"})
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "tower" and conf["sasl.password"] == "pw-of-tower"
    assert conf["ssl.ca.location"] == str(tmp_path.resolve() / "security" / "ca.pem") and conf["group.id"] == "g"
    etcd = settings.etcd(Role.READER)
    assert etcd.url.startswith("https://") and etcd.cert_file is not None and etcd.cert_file.name == "etcd-reader.pem"


def test_passwords_never_show_in_a_repr(tmp_path: Path) -> None:
    _material(tmp_path)
    settings = Settings(state_dir=tmp_path, secure=True)
    access = settings.kafka(Role.ADMIN)
    assert "pw-of-admin" not in repr(access) and "pw-of-admin" not in str(access) and access.who == "User:admin"
    identity = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u",
                                  "KAFKA_SASL_PASSWORD": "hunter2"})  # fmt: skip
    assert "hunter2" not in repr(identity)


def test_a_workers_environment_carries_the_material_and_a_later_command_finds_it(tmp_path: Path) -> None:
    folder = _material(tmp_path)
    found = Settings.from_env({"CORRIDOR_STATE_DIR": str(tmp_path)})
    assert found.security_material == folder
    child = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **found.security_env()})
    assert child.kafka(Role.TOWER).username == "tower"
    # a user's own cluster is never mistaken for the embedded secure stack
    assert Settings.from_env({"CORRIDOR_STATE_DIR": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": "k:1"}).kafka(
        Role.TOWER
    ) == KafkaAccess("k:1")


def test_a_users_own_cluster_gets_the_one_identity_they_configured(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9093", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                           "KAFKA_SASL_USERNAME": "tower-7", "KAFKA_SASL_PASSWORD_FILE": str(secret)})  # fmt: skip
    for role in Role:
        access = s.kafka(role)
        assert (access.bootstrap, access.username, access.password) == ("k1:9093", "tower-7", "s3cret")


def test_on_a_users_own_cluster_the_vehicles_may_present_their_own_identity(tmp_path: Path) -> None:
    """A scenario driver holds an operator's identity; its fleet's clients still present the vehicles'."""
    (tmp_path / "pw").write_text("operator\n")
    (tmp_path / "vehicle-pw").write_text("on-the-road\n")
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9093", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                           "KAFKA_SASL_USERNAME": "admin", "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "pw"),
                           "KAFKA_VEHICLE_SASL_USERNAME": "vehicle",
                           "KAFKA_VEHICLE_SASL_PASSWORD_FILE": str(tmp_path / "vehicle-pw")})  # fmt: skip
    fleet = s.kafka(Role.VEHICLE)
    assert (fleet.bootstrap, fleet.protocol, fleet.username, fleet.password) == ("k1:9093", "SASL_SSL", "vehicle",
                                                                                 "on-the-road")  # fmt: skip
    assert "on-the-road" not in repr(s)
    for role in set(Role) - {Role.VEHICLE}:
        assert (s.kafka(role).username, s.kafka(role).password) == ("admin", "operator")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
          "KAFKA_VEHICLE_SASL_USERNAME": "vehicle"}, "go together"),
        ({"KAFKA_VEHICLE_SASL_USERNAME": "vehicle", "KAFKA_VEHICLE_SASL_PASSWORD_FILE": "/etc/hostname"},
         "needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
          "KAFKA_VEHICLE_SASL_USERNAME": "vehicle", "KAFKA_VEHICLE_SASL_PASSWORD_FILE": "/nonexistent/pw"},
         "KAFKA_VEHICLE_SASL_PASSWORD_FILE: cannot read it"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
          "KAFKA_VEHICLE_SASL_USERNAME": "vehicle", "KAFKA_VEHICLE_SASL_PASSWORD_FILE": "/dev/null"}, "is empty"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS': choose 'PLAINTEXT'"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "needs KAFKA_SASL_USERNAME and a pass"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "MD5"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "no such file"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u",
          "KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read it"),
        ({"ETCD_CERT_FILE": "/x.pem"}, "need ETCD_CA_FILE"),
        ({"CORRIDOR_SECURE": "maybe"}, "use 1 or 0"),
    ],
)  # fmt: skip
def test_bad_security_settings_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        Settings.from_env(env)
    assert "\n" not in str(err.value)


def test_missing_material_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stack up --secure"):
        Settings(state_dir=tmp_path, secure=True).kafka(Role.VEHICLE)


def _ops(role: Role, name: str) -> set[str]:
    """Operations `role` holds on topic `name`, literal or by prefix."""
    out: set[str] = set()
    for g in kafka_grants(TOPICS):
        hit = g.name == name if g.pattern == "literal" else name.startswith(g.name)
        if g.role == role and g.resource == "topic" and hit:
            out |= set(g.operations)
    return out


def test_vehicles_may_write_only_telemetry_hazards_and_their_gateways_refusals_and_read_only_advisories() -> None:
    changelogs = changelog_topics(app_id(TOPICS.prefix, "-run1"))
    assert "WRITE" in _ops(Role.VEHICLE, TOPICS.telemetry) and "WRITE" in _ops(Role.VEHICLE, TOPICS.hazards)
    assert "WRITE" in _ops(Role.VEHICLE, TOPICS.dead_letter), "a gateway dead-letters what the radio sent it"
    assert "READ" not in _ops(Role.VEHICLE, TOPICS.dead_letter)
    for name in (TOPICS.advisories, TOPICS.tower_sync, *changelogs):
        assert "WRITE" not in _ops(Role.VEHICLE, name), name
    assert "READ" not in _ops(Role.VEHICLE, TOPICS.telemetry), "no vehicle reads another's telemetry"


def test_towers_hold_what_their_clients_use_and_readers_only_read() -> None:
    changelogs = changelog_topics(app_id(TOPICS.prefix, "-run1"))
    assert all({"READ", "WRITE", "CREATE"} <= _ops(Role.TOWER, c) for c in changelogs)
    assert app_id(TOPICS.prefix, "-x").startswith(towers_prefix(TOPICS))
    assert "WRITE" not in _ops(Role.TOWER, TOPICS.telemetry) and "WRITE" in _ops(Role.TOWER, TOPICS.advisories)
    every = [TOPICS.telemetry, TOPICS.hazards, TOPICS.advisories, TOPICS.tower_sync, TOPICS.dead_letter]
    assert all(_ops(Role.READER, t) == {"READ", "DESCRIBE"} for t in every)
    assert not any(g.role == Role.ADMIN for g in kafka_grants(TOPICS)), "the admin is a super user, not a grant"
    assert {(g.role, g.permission) for g in ETCD_GRANTS} == {(Role.TOWER, "readwrite"), (Role.READER, "read")}


def test_etcd_access_without_tls_is_plain_http() -> None:
    access = EtcdAccess("127.0.0.1", 2379)
    assert access.url == "http://127.0.0.1:2379" and access.ssl_context() is None
    assert access.client_kwargs() == {"host": "127.0.0.1", "port": 2379}


def test_the_manuals_table_of_principals_is_the_policy() -> None:
    from pipeline.shared.access_policy import policy_table
    from tests.conftest import REPO

    assert policy_table(TOPICS) in (REPO / "docs" / "security.md").read_text(), "the manual's table: regenerate it"


def test_java_clients_get_the_same_identity_and_the_login_module_of_its_mechanism() -> None:
    scram = KafkaAccess("k:1", "SASL_SSL", "SCRAM-SHA-512", "u", "p", Path("/ca.pem")).java_properties()
    assert scram["sasl.jaas.config"].startswith("org.apache.kafka.common.security.scram.ScramLoginModule")
    assert scram["ssl.truststore.location"] == "/ca.pem" and scram["security.protocol"] == "SASL_SSL"
    plain = KafkaAccess("k:1", "SASL_PLAINTEXT", "PLAIN", "u", "p").java_properties()
    assert "plain.PlainLoginModule" in plain["sasl.jaas.config"] and "ssl.truststore.location" not in plain
