"""The secure stack's certificates pass a strict X.509 check (Python 3.13's default), in a real
TLS handshake over loopback: without key identifiers and key usage, that check refused them."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.shared.access import EtcdAccess, Role, strict_context
from pipeline.stack.security import SecurityMaterial


def _handshake(server_cert: Path, server_key: Path, client: ssl.SSLContext, client_ca: Path | None = None) -> str:
    """Serve one TLS handshake on loopback and make it with `client`; '' if it succeeded, else why not."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(server_cert), str(server_key))
    if client_ca is not None:  # mutual TLS, as etcd asks of its clients
        server.load_verify_locations(str(client_ca))
        server.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return ""
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message)
    finally:
        thread.join(10)
        listener.close()


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> SecurityMaterial:
    made = SecurityMaterial(tmp_path_factory.mktemp("security"))
    made.make()
    return made


def test_the_strict_check_is_on() -> None:
    assert strict_context(None).verify_flags & ssl.VERIFY_X509_STRICT


def test_etcd_and_its_clients_pass_a_strict_check(material: SecurityMaterial) -> None:
    cert, key = material.etcd_client(Role.TOWER)
    access = EtcdAccess("127.0.0.1", 0, material.ca, cert, key)
    context = access.ssl_context()
    assert context is not None and context.verify_flags & ssl.VERIFY_X509_STRICT
    assert _handshake(*material.etcd_server, context, client_ca=material.ca) == ""


def test_the_brokers_certificate_passes_a_strict_check(material: SecurityMaterial, tmp_path: Path) -> None:
    pem = material.broker_keystore.read_bytes()
    key, chain = tmp_path / "key.pem", tmp_path / "chain.pem"
    cut = pem.index(b"-----BEGIN CERTIFICATE-----")
    key.write_bytes(pem[:cut])
    chain.write_bytes(pem[cut:])
    assert _handshake(chain, key, strict_context(material.ca)) == ""


def test_a_certificate_without_key_identifiers_is_refused(tmp_path: Path) -> None:
    """Made as the stack made them before: the check this file relies on does refuse it."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    lenient = ssl.create_default_context(cafile=str(paths["ca"]))
    lenient.check_hostname = False
    strict = strict_context(paths["ca"])
    strict.check_hostname = False
    assert _handshake(paths["cert"], paths["key"], lenient) == ""
    assert _handshake(paths["cert"], paths["key"], strict) != ""
