"""Secure mode on the real broker and etcd: what each principal is refused matters most."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import etcd3
import grpc
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography import x509

from pipeline.admin import declare
from pipeline.drill.reading import read_all
from pipeline.ports import free_ports
from pipeline.shared.access import KafkaAccess, Role, client_conf
from pipeline.shared.config import Ports, Settings
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario
from pipeline.stack import Stack
from pipeline.stack.security import SecurityMaterial
from tests.integration.test_simulation import SHORT
from towers.config import app_id, changelog_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = Settings.from_env()
    settings = Settings(state_dir=tmp_path_factory.mktemp("secure"), cache_dir=base.cache_dir, secure=True,
                        topic_prefix=f"s{uuid.uuid4().hex[:6]}", ports=Ports(*free_ports(5)))  # fmt: skip
    with Stack(settings, attached=True) as stack:
        declare(settings, settings.topics(9))
        yield stack
        gc.collect()  # the clients the tests left go before their broker, or they log its absence


def _produce(access: KafkaAccess, topic: str) -> KafkaError | None:
    """The error of one record's delivery (None: written), with a wait short enough for a refusal."""
    errors: list[KafkaError | None] = []
    producer = Producer(client_conf(access, {"message.timeout.ms": 8000, "log_level": 0}))
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    return errors[0] if errors else KafkaError(KafkaError._MSG_TIMED_OUT)


def _passwords(stack: Stack) -> list[str]:
    return [pw for _, pw in SecurityMaterial(stack.settings.security_material).credentials().values()]  # type: ignore[arg-type]


def test_a_vehicle_writes_telemetry_but_is_refused_the_towers_topics(secure: Stack) -> None:
    s = secure.settings
    topics = s.topics(9)
    vehicle = s.kafka(Role.VEHICLE)
    assert _produce(vehicle, topics.telemetry) is None
    for topic in (topics.advisories, topics.tower_sync, changelog_topics(app_id(topics.prefix))[0]):
        err = _produce(vehicle, topic)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, err)


def test_a_wrong_password_and_a_plaintext_client_are_refused(secure: Stack) -> None:
    s = secure.settings
    wrong = KafkaAccess(s.bootstrap_servers, "SASL_SSL", "SCRAM-SHA-512", "vehicle", "not-its-password",
                        s.kafka(Role.VEHICLE).ca_file)  # fmt: skip
    err = _produce(wrong, s.topics(9).telemetry)
    assert err is not None and err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._AUTHENTICATION), err
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": s.bootstrap_servers, "log_level": 0}).list_topics(timeout=5)


def test_etcd_refuses_clients_without_a_certificate_and_readers_that_write(secure: Stack) -> None:
    s = secure.settings
    ca = str(s.etcd(Role.TOWER).ca_file)
    anonymous = etcd3.client(host="127.0.0.1", port=s.ports.etcd, ca_cert=ca, timeout=5)
    with pytest.raises((etcd3.exceptions.Etcd3Exception, grpc.RpcError)):
        anonymous.get("/corridor/x")
    key = f"/corridor/{uuid.uuid4().hex[:6]}/probe"
    tower = etcd3.client(**s.etcd(Role.TOWER).client_kwargs(), timeout=5)
    reader = etcd3.client(**s.etcd(Role.READER).client_kwargs(), timeout=5)
    vehicle = etcd3.client(**s.etcd(Role.VEHICLE).client_kwargs(), timeout=5)
    tower.put(key, b"from a tower")
    assert reader.get(key)[0] == b"from a tower"
    with pytest.raises((etcd3.exceptions.Etcd3Exception, grpc.RpcError)):
        reader.put(key, b"from a reader")
    with pytest.raises((etcd3.exceptions.Etcd3Exception, grpc.RpcError)):
        tower.put("/elsewhere/key", b"outside its prefix")
    with pytest.raises((etcd3.exceptions.Etcd3Exception, grpc.RpcError)):
        vehicle.get(key)
    assert reader.get(key)[0] == b"from a tower"


def test_kafkas_own_tools_run_as_the_admin_principal(secure: Stack) -> None:
    s = secure.settings
    env = {**os.environ, "CORRIDOR_STATE_DIR": str(s.state_dir), "CORRIDOR_KAFKA_PORT": str(s.ports.kafka),
           "CORRIDOR_CACHE_DIR": str(s.cache_dir)}  # fmt: skip
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run([sys.executable, "-m", "pipeline", "kafka", "topics", "--list"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert s.topics(9).telemetry in done.stdout.split(), done.stderr[-500:]


def test_the_material_is_owner_only(secure: Stack) -> None:
    folder = secure.settings.security_material
    assert folder is not None and (folder.stat().st_mode & 0o777) == 0o700
    for path in folder.iterdir():
        assert (path.stat().st_mode & 0o777) == 0o600, path
    assert (secure.kafka.home / "server.properties").stat().st_mode & 0o077 == 0


def test_no_process_shows_a_password_on_its_command_line(secure: Stack) -> None:
    """What `ps` shows to every user of the host: the broker formatted with SCRAM users (through an
    argument file), the broker, etcd and their tools."""
    material = secure.settings.security_material
    assert material is not None
    passwords = [pw.encode() for _, pw in SecurityMaterial(material).credentials().values()]
    shown = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            shown.append(cmdline.read_bytes())
        except OSError:  # gone meanwhile
            continue
    assert any(b"kafka.Kafka" in c for c in shown), "the broker is among them"
    assert not [c[:120] for c in shown if any(pw in c for pw in passwords)]


def test_the_hazard_scenario_runs_end_to_end_secure_and_no_password_is_written(secure: Stack, tmp_path: Path) -> None:
    short = {**SHORT, "vehicles": 200, "duration_s": 90,
             "events": [{"at_s": 20, "hazard": {"km": 36.0, "type": "ANIMAL", "direction": "NORTHBOUND", "id": "deer"}},
                        {"at_s": 80, "clear": "deer"}]}  # fmt: skip
    result = run_scenario(parse_scenario(short, "secure"), secure.settings, tmp_path / "report", keep_state=True)
    s = result.summary
    deer = s["hazards"]["deer"]
    assert not s["partial"] and s["run"]["dead_letters"] == 0
    assert deer["advisories"] > 0 and deer["actions"]["SLOW_DOWN"] > 0
    assert {3, 4} <= set(deer["advised_regions"]), "tower-sync works between principals' grants"
    assert s["consistency"]["rows"] and s["run"]["towers_converged"], "etcd snapshots made with client certificates"
    # what a run writes: reports, the workers' and servers' logs, the CLI's status pages
    env = {**os.environ, "CORRIDOR_STATE_DIR": str(secure.settings.state_dir),
           "CORRIDOR_KAFKA_PORT": str(secure.settings.ports.kafka),
           "CORRIDOR_ETCD_PORT": str(secure.settings.ports.etcd)}  # fmt: skip
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("ETCD_ENDPOINTS", None)
    cli = [sys.executable, "-m", "pipeline"]
    shown = "".join(subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60).stdout
                    for args in (["stack", "status"], ["status"]))  # fmt: skip
    assert "SASL_SSL" in shown and "auth on" in shown, shown
    written = shown + "".join(
        p.read_text(errors="replace")
        for root in (tmp_path, secure.settings.state_dir / "runs", secure.kafka.home, secure.etcd.home)
        for p in root.rglob("*") if p.is_file() and p.suffix in (".md", ".json", ".log")
    )  # fmt: skip
    assert len(written) > 10_000
    for password in _passwords(secure):
        assert password not in written


def test_certificates_are_issued_again_and_the_data_and_passwords_stay(secure: Stack) -> None:
    """`corridor stack rotate-certs`: before, renewing meant `stack down --purge` (the CA's key was
    not kept), and with it every topic and key. Last in this file: it restarts the module's servers."""
    s = secure.settings
    material = SecurityMaterial(s.security_material)  # type: ignore[arg-type]
    admin = s.kafka(Role.ADMIN)
    topic = f"{s.topic_prefix}.rotation"
    creator = AdminClient(client_conf(admin))  # held: a client collected mid-request cancels it
    creator.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    assert _produce(admin, topic) is None
    key = f"/corridor/{uuid.uuid4().hex[:6]}/rotation"
    etcd3.client(**s.etcd(Role.TOWER).client_kwargs(), timeout=5).put(key, b"before")

    def serials() -> set[int]:
        pems = [material.broker_keystore, material.etcd_server[0], *(material.etcd_client(r)[0] for r in Role)]
        return {x509.load_pem_x509_certificates(p.read_bytes())[0].serial_number for p in pems}

    before, ca, passwords = serials(), material.ca.read_bytes(), material.credentials()
    assert sorted(secure.rotate_certs()) == ["etcd", "kafka"]
    assert not serials() & before, "every certificate is new"
    assert material.ca.read_bytes() == ca and material.credentials() == passwords
    assert secure.status().healthy
    # clients started now, on the new certificates, find what was there
    assert [v for _, v in read_all(admin, topic, 1)] == [b"x"]
    assert etcd3.client(**s.etcd(Role.TOWER).client_kwargs(), timeout=5).get(key)[0] == b"before"
    refused = _produce(s.kafka(Role.VEHICLE), s.topics(9).advisories)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, "the ACLs stayed too"
