from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.shared.config import Settings
from pipeline.shared.corridor import default_paths, load_corridor
from pipeline.shared.errors import ConfigError
from pipeline.shared.topics import Topics
from towers.config import TowerConfig, WorkerSettings


def test_defaults_are_the_embedded_loopback_stack() -> None:
    s = Settings.from_env({})
    assert not s.kafka_external and not s.etcd_external
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.etcd_hosts == (("127.0.0.1", 2379),)
    assert s.state_dir == Path(".corridor")


def test_external_cluster_from_environment() -> None:
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092", "ETCD_ENDPOINTS": "http://e1:2379"})
    assert s.kafka_external and s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.etcd_external and s.etcd_hosts == (("e1", 2379),)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": "no-port"}, "KAFKA_BOOTSTRAP_SERVERS: endpoint 'no-port' is not host:port"),
        ({"CORRIDOR_KAFKA_PORT": "ninety"}, "CORRIDOR_KAFKA_PORT='ninety': is not a whole number"),
        ({"CORRIDOR_KAFKA_PORT": "70000"}, "must be 65535 or less"),
        ({"CORRIDOR_ETCD_PORT": "9092"}, "must differ"),
        ({"CORRIDOR_TOPIC_PREFIX": "a b"}, "CORRIDOR_TOPIC_PREFIX"),
        ({"CORRIDOR_TOPIC_REPLICATION": "0"}, "CORRIDOR_TOPIC_REPLICATION"),
        ({"CORRIDOR_KAFKA_BROKERS": "2"}, "CORRIDOR_KAFKA_BROKERS: 2 is not one of 1, 3, 5"),
        ({"CORRIDOR_ETCD_MEMBERS": "many"}, "CORRIDOR_ETCD_MEMBERS"),
        ({"MQTT_URL": "http://x"}, "MQTT_URL='http://x' is not mqtt://host:port"),
        ({"KAFKA_SECURITY_PROTOCOL": "tls"}, "KAFKA_SECURITY_PROTOCOL='tls': choose 'PLAINTEXT'"),
        ({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl"}, "needs KAFKA_SASL_USERNAME and a password"),
        ({"CORRIDOR_SECURE": "perhaps"}, "CORRIDOR_SECURE='perhaps': use 1 or 0"),
        ({"CORRIDOR_TOPIC_REPLICATION": "three"}, "CORRIDOR_TOPIC_REPLICATION='three': is not a whole number"),
        ({"SCHEMA_REGISTRY_URL": "ftp://r:8081"}, "SCHEMA_REGISTRY_URL='ftp://r:8081' is not an http"),
        ({"CORRIDOR_WIRE": "protobuf"}, "CORRIDOR_WIRE='protobuf'"),
        ({"CORRIDOR_REGISTRY_PORT": "9092"}, "must differ"),
        ({"SCHEMA_REGISTRY_USER": "me"}, "SCHEMA_REGISTRY_USER needs SCHEMA_REGISTRY_PASSWORD_FILE"),
        ({"SCHEMA_REGISTRY_USER": "me", "SCHEMA_REGISTRY_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read it"),
    ],
)
def test_bad_settings_name_the_culprit(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


def test_a_users_registry_is_used_as_given_and_the_embedded_one_otherwise(tmp_path: Path) -> None:
    assert Settings.from_env({}).schema_registry_url == "http://127.0.0.1:8081/apis/ccompat/v7"
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    own = Settings.from_env({"SCHEMA_REGISTRY_URL": "https://sr.example/ ", "SCHEMA_REGISTRY_USER": "corridor",
                             "SCHEMA_REGISTRY_PASSWORD_FILE": str(secret), "CORRIDOR_WIRE": "confluent"})  # fmt: skip
    assert own.registry_external and own.schema_registry_url == "https://sr.example"
    assert own.registry_auth == ("corridor", "s3cret") and "s3cret" not in repr(own)
    assert own.registry_env() == {"CORRIDOR_WIRE": "confluent", "CORRIDOR_REGISTRY_PORT": "8081",
                                  "SCHEMA_REGISTRY_URL": "https://sr.example"}  # fmt: skip


def test_regional_topics_have_one_partition_per_region() -> None:
    topics = Topics(regions=9, prefix="c")
    specs = {s.name: s for s in topics.specs()}
    regional = {"c.telemetry", "c.hazards", "c.advisories", "c.tower-sync", "c.dead-letter"}
    assert set(specs) == regional | {"c.corridor-stats"}
    assert {specs[name].partitions for name in regional} == {9}
    assert specs["c.corridor-stats"].partitions == 1, "the corridor-wide figures stay in window order"


def test_topic_replication_reaches_every_topic_declared_from_settings() -> None:
    settings = Settings.from_env({"CORRIDOR_TOPIC_REPLICATION": "3", "CORRIDOR_TOPIC_PREFIX": "k"})
    specs = settings.topics(12).specs()
    assert {(s.partitions, s.replication) for s in specs} == {(12, 3), (1, 3)}, "corridor-stats: one partition"
    assert Settings.from_env({}).topics(9).replication == 1


def test_a_corridor_without_regions_is_rejected() -> None:
    with pytest.raises(ConfigError):
        Topics(regions=0)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CORRIDOR_TOWER_WEB_PORT": "http"}, "CORRIDOR_TOWER_WEB_PORT='http': is not a whole number"),
        ({"CORRIDOR_TOWER_WEB_PORT": "0"}, "WEB_PORT='0': must be 1 or more"),
        ({"CORRIDOR_TOWER_STANDBYS": "-1"}, "CORRIDOR_TOWER_STANDBYS"),
        ({"CORRIDOR_TOWER_OFFSET_RESET": "newest"}, "choose 'earliest' or 'latest'"),
        ({"CORRIDOR_TOWER_ETCD": "maybe"}, "CORRIDOR_TOWER_ETCD='maybe': use 1 or 0"),
        ({"CORRIDOR_TOWER_APP_SUFFIX": "a/b"}, "CORRIDOR_TOWER_APP_SUFFIX='a/b'"),
        ({"CORRIDOR_TOWER_CONTROL_TOKEN": "short"}, "at least 16 printable"),
        ({"CORRIDOR_TOWER_LANES": "1.5"}, "CORRIDOR_TOWER_LANES='1.5': is not a whole number"),
        ({"CORRIDOR_TOWER_VEHICLE_TTL_S": "nan"}, "not a finite number"),
        ({"CORRIDOR_TOWER_HEARTBEAT_S": "20"}, "shorter than"),
        # Faust refuses it too, but at the worker's start, with a traceback
        ({"CORRIDOR_TOWER_REQUEST_TIMEOUT_S": "5"}, "must be at least CORRIDOR_TOWER_SESSION_TIMEOUT_S"),
        ({"CORRIDOR_TOWER_VEHICLE_TTL_S": "ten"}, "not a number"),
        # accepted, and then a traceback at the first message (the HLC refuses a zero drift)
        ({"CORRIDOR_TOWER_MAX_CLOCK_DRIFT_MS": "0"}, "CORRIDOR_TOWER_MAX_CLOCK_DRIFT_MS='0': must be above 0"),
        ({"CORRIDOR_TOWER_STOP_KM": "4"}, "must be below CORRIDOR_TOWER_LOOKAHEAD_KM"),
        ({"CORRIDOR_TOWER_ADVISORY_VALIDITY_S": "0"}, "ADVISORY_VALIDITY_S='0': must be above 0"),
    ],
)
def test_bad_worker_settings_name_the_culprit(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        WorkerSettings.from_env(env)
        TowerConfig.from_env(env)


def test_worker_settings_default_to_a_loopback_worker() -> None:
    w = WorkerSettings.from_env({})
    assert (w.web_bind, w.web_port, w.etcd, w.offset_reset) == ("127.0.0.1", 6066, True, "earliest")


def test_the_route_and_regions_files_are_read_from_the_environment_once_by_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    route, towers = default_paths()
    mine = json.loads(towers.read_text())
    mine["regions"][0]["name"] = "My first region"
    (tmp_path / "towers.json").write_text(json.dumps(mine))
    s = Settings.from_env({"CORRIDOR_TOWERS_FILE": str(tmp_path / "towers.json")})
    assert s.route_file is None and s.towers_file == tmp_path / "towers.json"
    assert s.corridor().regions.regions[0].name == "My first region"
    # below the settings nothing reads the environment: the shipped corridor, whatever it says
    monkeypatch.setenv("CORRIDOR_TOWERS_FILE", str(tmp_path / "missing.json"))
    assert load_corridor().regions.regions[0].name != "My first region"
    assert Settings.from_env({}).corridor().route.length_km == load_corridor(route).route.length_km


def test_the_radio_links_identity_is_anonymous_the_stacks_or_the_users_own(tmp_path: Path) -> None:
    plain = Settings.from_env({"CORRIDOR_STATE_DIR": str(tmp_path / "plain")})
    assert not plain.mqtt("corridor-gateway").secure and plain.mqtt("corridor-gateway").username == ""
    secrets = tmp_path / "mqtt"
    secrets.mkdir()
    (secrets / "corridor-gateway.password").write_text("gw-secret\n")
    (secrets / "vehicles.key").write_bytes(b"k" * 32)
    own = Settings.from_env({"MQTT_URL": "mqtt://broker.example:8883", "MQTT_CA_FILE": str(tmp_path / "ca.pem"),
                             "MQTT_SECRETS_DIR": str(secrets)})  # fmt: skip
    gateway = own.mqtt("corridor-gateway")
    assert (gateway.host, gateway.port, gateway.username, gateway.password) == (
        "broker.example", 8883, "corridor-gateway", "gw-secret")  # fmt: skip
    assert gateway.secure and "gw-secret" not in repr(gateway)
    assert own.mqtt_vehicle_key() == b"k" * 32 and own.mqtt().username == ""
    with pytest.raises(ConfigError, match="corridor-mqtt-admin"):
        own.mqtt("corridor-mqtt-admin")
    with pytest.raises(ConfigError, match="provisioning key"):
        plain.mqtt_vehicle_key()
