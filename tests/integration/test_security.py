"""Secure mode on the real broker and etcd: what each principal is refused matters most."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import etcd3
import grpc
import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography import x509

from pipeline.admin import declare
from pipeline.deploy.cluster.radio_check import MUST_BE_REFUSED, check, radio_problems
from pipeline.drill.reading import read_all
from pipeline.ports import free_ports
from pipeline.shared.access import KafkaAccess, Role, client_conf
from pipeline.shared.config import Ports, Settings
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.mqtt_client import mqtt_client, refusal
from pipeline.shared.radio_access import MQTT_ADMIN, MQTT_GATEWAY, MqttAccess, vehicle_password
from pipeline.shared.radio_topics import RadioTopics
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario
from pipeline.stack import Stack
from pipeline.stack.mqtt import MqttBroker, mqtt_answers
from pipeline.stack.security import SecurityMaterial
from pipeline.stack.wait import missing_now
from producers.encoding import vehicle_id
from producers.enrolment import Enrolment
from tests.helpers import assert_one_line_error, corridor, eventually
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


def test_reading_a_topic_the_principal_may_not_read_is_one_line_not_a_wait(secure: Stack, tmp_path: Path) -> None:
    """A tower may write dead letters, not read them: `corridor consume` as the tower says so at once
    (it used to skip the refusals and wait for records that could never come)."""
    s = secure.settings
    tower = s.kafka(Role.TOWER)
    password = tmp_path / "tower.password"
    password.write_text(tower.password)
    password.chmod(0o600)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "tower",
           "KAFKA_SASL_PASSWORD_FILE": str(password), "KAFKA_SSL_CA_FILE": str(tower.ca_file),
           "CORRIDOR_TOPIC_PREFIX": s.topic_prefix, "CORRIDOR_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    env.pop("CORRIDOR_SECURE", None)
    result = corridor(env, "consume", "dead-letter", "--from-beginning", timeout=60)
    assert_one_line_error(result, f"{s.topic_prefix}.dead-letter", "User:tower")


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


def _radio(access: MqttAccess, name: str) -> tuple[mqtt.Client, dict[str, Any]]:
    """A client of the secure radio broker as `access`, and what the broker answered it."""
    seen: dict[str, Any] = {"suback": [], "puback": {}, "heard": []}
    client = mqtt_client(access, f"{name}-{uuid.uuid4().hex[:6]}")
    client.on_connect = lambda _c, _u, _f, reason, _p: seen.__setitem__("connack", str(reason))
    client.on_subscribe = lambda _c, _u, _m, reasons, _p: seen["suback"].append([refusal(r) for r in reasons])
    client.on_publish = lambda _c, _u, mid, reason, _p: seen["puback"].__setitem__(mid, refusal(reason))
    client.on_message = lambda _c, _u, m: seen["heard"].append(m.topic)
    client.connect(access.host, access.port)
    client.loop_start()
    eventually(lambda: "connack" in seen, f"{name}'s CONNACK")
    return client, seen


def test_the_radio_link_refuses_strangers_and_holds_each_vehicle_to_its_own_topics(secure: Stack) -> None:
    s = secure.settings
    broker = MqttBroker(s)
    broker.start(attached=True)
    topics = RadioTopics(9)
    clients: list[mqtt.Client] = []
    try:
        host, port = s.mqtt_address
        assert not mqtt_answers(host, port), "no clear-text MQTT on a secure stack"
        key = s.mqtt_vehicle_key()
        enrolment = Enrolment(s.mqtt(MQTT_ADMIN), topics, key)
        enrolment.enrol(["veh-0000001", "veh-0000002"])
        enrolment.close()
        vehicle = s.mqtt()
        for who, access in (("anonymous", vehicle), ("wrong password", replace(vehicle.as_vehicle("veh-0000001", key),
                            password="guess")), ("not enrolled", vehicle.as_vehicle("veh-0000099", key))):  # fmt: skip
            client, seen = _radio(access, "stranger")
            clients.append(client)
            assert seen["connack"] == "Not authorized", who
        gateway, at_gateway = _radio(s.mqtt(MQTT_GATEWAY), "gateway")
        one, at_one = _radio(vehicle.as_vehicle("veh-0000001", key), "one")
        two, at_two = _radio(vehicle.as_vehicle("veh-0000002", key), "two")
        clients += [gateway, one, two]
        gateway.subscribe([(topics.every("telemetry", "gateways"), 1)])
        one.subscribe([(topics.vehicle_advisories("veh-0000001"), 1), (topics.advisories(4), 1)])
        two.subscribe([(topics.vehicle_advisories("veh-0000001"), 1), (topics.every("telemetry", "gateways"), 1),
                       (topics.every("telemetry"), 1), (topics.vehicle_advisories("veh-0000002"), 1)])  # fmt: skip
        eventually(lambda: at_gateway["suback"] and at_one["suback"] and at_two["suback"], "the SUBACKs")
        assert at_gateway["suback"] == [[None]] and at_one["suback"] == [[None, None]]
        assert at_two["suback"] == [["Not authorized", "Not authorized", "Not authorized", None]], (
            "another's advisories, the gateways' share and everyone's telemetry are refused; its own granted"
        )
        own = one.publish(topics.telemetry(4, "veh-0000001"), b"mine", qos=1)
        forged = one.publish(topics.telemetry(4, "veh-0000002"), b"as two", qos=1)
        advice = gateway.publish(topics.vehicle_advisories("veh-0000001"), b"slow down", qos=1)
        eventually(lambda: {own.mid, forged.mid} <= set(at_one["puback"]), "the PUBACKs")
        assert at_one["puback"][own.mid] is None and at_one["puback"][forged.mid] == "Not authorized"
        advice.wait_for_publish(5)
        eventually(lambda: at_gateway["heard"] and at_one["heard"], "the update and the advisory")
        assert at_gateway["heard"] == [topics.telemetry(4, "veh-0000001")]
        assert at_one["heard"] == [topics.vehicle_advisories("veh-0000001")] and not at_two["heard"]
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.stop()


def test_the_clusters_radio_check_finds_every_refusal_on_the_real_broker(secure: Stack) -> None:
    """The check `corridor k8s e2e` runs in a secure overlay's pod, first against the local broker."""
    broker = MqttBroker(secure.settings)
    broker.start(attached=True)
    try:
        answers = check(secure.settings)
    finally:
        broker.stop()
    assert radio_problems(answers, towers=False) == [], answers  # no towers here: the cluster's run has them
    assert all(answers[what] for what in MUST_BE_REFUSED)


def test_waiting_for_a_users_own_secure_broker_finds_it_over_tls(secure: Stack) -> None:
    """A pod given MQTT_URL and MQTT_CA_FILE (Kubernetes' secure overlays) waits for its broker: a
    probe in clear text is closed by a TLS listener, which must not read as no broker at all."""
    s = secure.settings
    broker = MqttBroker(s)
    broker.start(attached=True)
    try:
        host, port = s.mqtt_address
        own = replace(s, mqtt_url=f"mqtt://{host}:{port}", mqtt_ca_file=(s.security_material or Path(".")) / "ca.pem")
        assert missing_now(own, towers=False) is None
        assert "mqtt" in (missing_now(replace(own, mqtt_ca_file=None), towers=False) or ""), "no TLS, no broker"
    finally:
        broker.stop()


def test_a_revoked_vehicle_is_cut_off_at_once_and_at_every_later_start_while_the_others_drive_on(
    secure: Stack,
) -> None:
    s = secure.settings
    material = SecurityMaterial(s.security_material or Path("."))
    broker = MqttBroker(s)
    broker.start(attached=True)
    topics, key = RadioTopics(9), s.mqtt_vehicle_key()
    stolen, honest = "veh-9990031", "veh-9990032"  # ids no scenario of the module's tests drives
    clients: list[mqtt.Client] = []

    def connack(vehicle_id: str) -> str:
        client, seen = _radio(s.mqtt().as_vehicle(vehicle_id, key), "radio")
        clients.append(client)
        return str(seen["connack"])

    try:
        enrolment = Enrolment(s.mqtt(MQTT_ADMIN), topics, key)
        enrolment.enrol([stolen, honest])
        thief, at_thief = _radio(s.mqtt().as_vehicle(stolen, key), "thief")
        driver, at_driver = _radio(s.mqtt().as_vehicle(honest, key), "driver")
        clients += [thief, driver]
        assert (at_thief["connack"], at_driver["connack"]) == ("Success", "Success")
        cut: list[str] = []
        cut_other: list[str] = []
        thief.on_disconnect = lambda _c, _u, _f, reason, _p: cut.append(str(reason))
        driver.on_disconnect = lambda _c, _u, _f, reason, _p: cut_other.append(str(reason))
        material.revoke_vehicles([stolen])
        enrolment.revoke([stolen])
        enrolment.close()
        eventually(lambda: cut, "the revoked vehicle disconnected by the broker")
        assert connack(stolen) == "Not authorized", "and refused when it dials again"
        sent = driver.publish(topics.telemetry(4, honest), b"still here", qos=1)
        eventually(lambda: sent.mid in at_driver["puback"], "the other vehicle's PUBACK")
        assert at_driver["puback"][sent.mid] is None and not cut_other, "the other vehicle was never cut off"
        broker.stop()
        broker.start(attached=True)  # a later start: its starting file written afresh
        again = Enrolment(s.mqtt(MQTT_ADMIN), topics, key)
        try:
            again.enrol([stolen, honest])  # enrolling it again creates nothing: it exists, disabled
        finally:
            again.close()
        assert (connack(stolen), connack(honest)) == ("Not authorized", "Success")
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.stop()
        material.mqtt_revoked.unlink(missing_ok=True)


def test_the_route_over_mqtt_runs_secure_each_vehicle_as_itself_no_password_shown_and_a_forged_cancel_silences_nothing(
    secure: Stack, tmp_path: Path
) -> None:
    s = secure.settings
    short = {**SHORT, "vehicles": 150, "duration_s": 90, "radio": "mqtt",
             "events": [{"at_s": 20, "hazard": {"km": 36.0, "type": "ANIMAL", "direction": "NORTHBOUND", "id": "deer"}},
                        {"at_s": 80, "clear": "deer"}]}  # fmt: skip
    forged: list[int] = []

    def cancel_as_another(snap: dict[str, Any]) -> None:
        """A vehicle of the fleet cancels the deer: once in the scenario's name, once in its own."""
        if snap["fleet"].t < 40 or forged:
            return
        key, topics = s.mqtt_vehicle_key(), RadioTopics(9)
        client, _ = _radio(s.mqtt().as_vehicle("veh-0000003", key), "canceller")
        try:
            now = int(time.time() * 1000)
            for reporter in ("scenario", "veh-0000003"):
                rec = hazard_record(36.0, "OBSTACLE", "NORTHBOUND", 1, now, 600, "deer", reporter, cancelled=True)
                info = client.publish(topics.hazards(rec["region_id"], "veh-0000003"), CODEC.encode(HAZARD, rec), qos=1)
                info.wait_for_publish(5)
                forged.append(info.mid)
        finally:
            client.disconnect()
            client.loop_stop()

    shown: list[bytes] = []  # every process's command line and environment, mid-run: what `ps e` shows

    def tick(snap: dict[str, Any]) -> None:
        cancel_as_another(snap)
        if snap["fleet"].t >= 30 and not shown:
            for path in [*Path("/proc").glob("[0-9]*/cmdline"), *Path("/proc").glob("[0-9]*/environ")]:
                try:
                    shown.append(path.read_bytes())
                except OSError:  # gone meanwhile
                    continue

    summary = run_scenario(parse_scenario(short, "secure-radio"), s, tmp_path / "report", on_tick=tick,
                           keep_state=True).summary  # fmt: skip
    key = s.mqtt_vehicle_key()
    secrets = [s.mqtt(MQTT_GATEWAY).password, s.mqtt(MQTT_ADMIN).password, *_passwords(secure),
               *(vehicle_password(key, vehicle_id(n)) for n in range(200))]  # fmt: skip
    assert any(b"gateway" in c and b"corridor" in c for c in shown), "the gateway is among the processes seen"
    assert all(secrets) and not [c[:120] for c in shown if any(pw.encode() in c for pw in secrets)]
    r, deer = summary["radio"], summary["hazards"]["deer"]
    assert len(forged) == 2, "both cancels were sent (and the broker took them: they are the vehicle's own topic)"
    assert r["connections"] >= 150 and r["refused_connections"] == 0 and r["subscriptions_refused"] == 0, r
    assert r["updates_heard_by_gateway"] > 0.99 * r["updates_published"], r
    assert r["gateway_dead_letters"] == {"impersonation": 1}, "the cancel in the scenario's name, at the gateway"
    assert summary["run"]["dead_letters"] == 2, "that one, and the tower's refusal of the vehicle's own cancel"
    assert deer["advisories"] > 0 and deer["actions"]["SLOW_DOWN"] > 0, deer
    assert deer["unadvised_vehicles_passed"] == 0, "still advised after the forged cancels"
    assert summary["run"]["advisories_received"] > 0 and summary["run"]["stale_advisories"] == 0
    assert summary["run"]["forged_advisories"] == 0, "signed with the stack's key, checked over the radio"
