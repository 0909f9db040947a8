"""What it costs a secure radio broker to know 3,600 vehicles (the default scenario's fleet): each
enrolled with a password, or each with a client certificate of its own, then every one connected
over TLS and kept connected. One process opens the connections one after another, each a TLS
handshake and an MQTT 5 CONNECT; the broker's CPU and memory are read from /proc."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.ports import free_ports
from pipeline.shared.access import strict_context
from pipeline.shared.config import Settings
from pipeline.shared.radio_access import MQTT_ADMIN, vehicle_password
from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.mqtt import MqttBroker
from pipeline.stack.security import SecurityMaterial, issue_cert
from producers.encoding import vehicle_id
from producers.enrolment import Enrolment

__all__ = ["connect_packet", "cpu_seconds", "run_identities"]

_TICK_S = os.sysconf("SC_CLK_TCK")


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str, username: str = "", password: str = "") -> bytes:
    """An MQTT 5 CONNECT with a clean start and keep-alive 60 s, and a username and password when given."""
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = _utf8("MQTT") + bytes([5, flags, 0, 60, 0]) + _utf8(client_id)
    body += (_utf8(username) if username else b"") + (_utf8(password) if password else b"")
    length, n = b"", len(body)
    while True:
        byte, n = n & 0x7F, n >> 7
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([0x10]) + length + body


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK_S


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _connect_all(host: str, port: int, contexts: list[ssl.SSLContext], ids: list[str], passwords: list[str],
                 pid: int) -> dict[str, Any]:  # fmt: skip
    socks: list[ssl.SSLSocket] = []
    refused = 0
    cpu0, wall0, own0 = cpu_seconds(pid), time.monotonic(), time.process_time()
    try:
        for ctx, vid, password in zip(contexts, ids, passwords, strict=True):
            raw = socket.create_connection((host, port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as MQTT clients do: no 40 ms ACK wait
            sock = ctx.wrap_socket(raw, server_hostname=host)
            sock.sendall(connect_packet(f"bench-{vid}", vid if password else "", password))
            ack = sock.recv(16)
            if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
                refused += 1
            socks.append(sock)
        wall, cpu, own = time.monotonic() - wall0, cpu_seconds(pid) - cpu0, time.process_time() - own0
        return {"connected": len(socks) - refused, "refused": refused, "connect_s": round(wall, 2),
                "per_connection_ms": round(1000 * wall / len(ids), 2),
                "broker_cpu_ms_per_connection": round(1000 * cpu / len(ids), 3),
                "client_cpu_ms_per_connection": round(1000 * own / len(ids), 3),
                "broker_rss_mib_connected": round(_rss_mib(pid), 1)}  # fmt: skip
    finally:
        for s in socks:
            s.close()


def _one(settings: Settings, n: int, certificates: bool, tmp: Path) -> dict[str, Any]:
    """The fleet enrolled in the broker's starting file (as a run does), then every vehicle connected;
    and what enrolling 200 more while it runs takes."""
    password_port = free_ports(1)[0] if certificates else None
    ids = [vehicle_id(i) for i in range(n)]
    broker = MqttBroker(settings, password_port=password_port, vehicles=tuple(ids))
    t0 = time.monotonic()
    broker.start(attached=True)
    out: dict[str, Any] = {"start_with_fleet_enrolled_s": round(time.monotonic() - t0, 2)}
    try:
        pid = broker.process.running_pid() or 0
        host, port = settings.mqtt_address
        topics, key = RadioTopics(len(settings.corridor().regions)), settings.mqtt_vehicle_key()
        admin = settings.mqtt(MQTT_ADMIN)
        if password_port is not None:
            admin = replace(admin, port=password_port)
        enrolment = Enrolment(admin, topics, key, timeout_s=60)
        t0 = time.monotonic()
        enrolment.enrol([vehicle_id(i) for i in range(n, n + 200)])
        enrolment.close()
        out["enrol_200_more_while_running_s"] = round(time.monotonic() - t0, 2)
        material = SecurityMaterial(settings.security_material or tmp)
        if certificates:
            t0 = time.monotonic()
            contexts = _certificates(material, ids, tmp)
            out["issue_certificates_s"] = round(time.monotonic() - t0, 2)
            passwords = [""] * n
        else:
            contexts = [strict_context(material.ca)] * n
            passwords = [vehicle_password(key, v) for v in ids]
        out.update(_connect_all(host, port, contexts, ids, passwords, pid))
        return out
    finally:
        broker.stop()


def _certificates(material: SecurityMaterial, ids: list[str], tmp: Path) -> list[ssl.SSLContext]:
    """A key and a certificate (its common name the vehicle's id) for each vehicle, from the stack's CA."""
    ca_key = serialization.load_pem_private_key(material.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(material.ca.read_bytes())
    out = []
    for vid in ids:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, vid)])
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        vkey, cert = issue_cert(ca_key, ca_cert, name, usages, [], dt.timedelta(days=30))  # type: ignore[arg-type]
        pem = vkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())  # fmt: skip
        path = tmp / f"{vid}.pem"
        path.write_bytes(pem + cert.public_bytes(serialization.Encoding.PEM))
        ctx = strict_context(material.ca)
        ctx.load_cert_chain(str(path))
        out.append(ctx)
    return out


def run_identities(settings: Settings, n: int = 3_600) -> dict[str, Any]:
    """Passwords against client certificates, each on a secure broker of its own."""
    out: dict[str, Any] = {"vehicles": n}
    for certificates in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "security"
            SecurityMaterial(folder).make()
            secure = replace(settings, security_dir=folder, state_dir=Path(tmp) / "state", mqtt_url="",
                             ports=replace(settings.ports, mqtt=free_ports(1)[0]))  # fmt: skip
            out["certificates" if certificates else "passwords"] = _one(secure, n, certificates, Path(tmp))
    return out
