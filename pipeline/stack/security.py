"""The secure stack's material: a local CA, the servers' and clients' certificates, SCRAM passwords.

Made once, at the first secure start, into `<state_dir>/security` (owner-only: 0700 folder, 0600
files), and kept with the broker's storage they were formatted into, until `stack down --purge`.
The CA's key is kept there too, so that `corridor stack rotate-certs` can issue the certificates
again (before they expire, or after one leaked) with the passwords and the data kept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.shared.access import Role
from pipeline.shared.advisory_signing import new_signing_key, public_pem
from pipeline.shared.errors import StackError

__all__ = ["BROKER_PRINCIPAL", "ETCD_USERS", "SecurityMaterial", "issue_cert", "new_ca"]

#: The broker's certificate names it; the controller listener maps it to `User:corridor-broker`.
BROKER_PRINCIPAL = "corridor-broker"
#: etcd user (the client certificate's common name) of each role; etcd's administrator is `root`.
ETCD_USERS = {Role.ADMIN: "root", Role.TOWER: "tower", Role.READER: "reader", Role.VEHICLE: "vehicle",
              Role.ANALYTICS: "analytics"}  # fmt: skip
Cert = x509.Certificate
_VALID = dt.timedelta(days=825)  # the longest a TLS client (Apple's, say) accepts


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "corridor"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # fmt: skip


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def new_ca(common_name: str, valid: dt.timedelta) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that signs certificates only, valid from five minutes ago (clock skew)."""
    now = dt.datetime.now(dt.UTC)
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


_SIGNING_ONLY = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False)  # fmt: skip


def issue_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName],
    valid: dt.timedelta,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and its end-entity certificate signed by the CA, valid from five minutes ago; with
    the key identifiers and the key usage that a strict X.509 check (`ssl.VERIFY_X509_STRICT`, Python
    3.13's default) requires of a chain."""
    now = dt.datetime.now(dt.UTC)
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_ONLY, critical=True)  # ECDSA keys sign the handshake, and nothing else
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


class SecurityMaterial:
    """Paths of one secure stack's files, and their making.

    `kafka_names` / `etcd_names` / `mqtt_names`: the DNS names the servers' certificates hold besides
    loopback (a cluster's Service and pod names, for `corridor k8s secrets`)."""

    def __init__(self, folder: Path, kafka_names: tuple[str, ...] = (), etcd_names: tuple[str, ...] = (),
                 mqtt_names: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.folder = folder
        self.kafka_names, self.etcd_names, self.mqtt_names = kafka_names, etcd_names, mqtt_names

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """Kafka's PEM keystore: the broker's key, its certificate, then the CA's."""
        return self.folder / "kafka-broker.pem"

    @property
    def etcd_server(self) -> tuple[Path, Path]:
        return self.folder / "etcd-server.pem", self.folder / "etcd-server-key.pem"

    def etcd_client(self, role: Role) -> tuple[Path, Path]:
        return self.folder / f"etcd-{role.value}.pem", self.folder / f"etcd-{role.value}-key.pem"

    @property
    def mqtt_server(self) -> tuple[Path, Path]:
        """The radio link's broker: its certificate and key."""
        return self.folder / "mqtt-server.pem", self.folder / "mqtt-server-key.pem"

    def mqtt_password(self, who: str) -> Path:
        """The MQTT password of `who` (the enrolment admin, the gateways): a file each, so a process
        reads only its own."""
        return self.folder / f"mqtt-{who}.password"

    @property
    def mqtt_vehicle_key(self) -> Path:
        """The fleet's provisioning key: each vehicle's MQTT password is derived from it and its id."""
        return self.folder / "mqtt-vehicles.key"

    @property
    def mqtt_revoked(self) -> Path:
        """The vehicles revoked on the radio link, one id a line: kept with the stack's material, so
        that every later start of its broker refuses them too (until `stack down --purge`)."""
        return self.folder / "mqtt-revoked.txt"

    def revoked_vehicles(self) -> tuple[str, ...]:
        if not self.mqtt_revoked.is_file():
            return ()
        return tuple(line for line in self.mqtt_revoked.read_text().splitlines() if line)

    def revoke_vehicles(self, vehicle_ids: list[str]) -> None:
        known = self.revoked_vehicles()
        self._write(self.mqtt_revoked, "".join(f"{v}\n" for v in dict.fromkeys([*known, *vehicle_ids])).encode())

    def ensure_mqtt(self) -> None:
        """The radio link's material, made on first need (a stack made secure before the radio link
        was: from the kept CA key)."""
        from pipeline.shared.radio_access import MQTT_ADMIN, MQTT_GATEWAY

        for who in (MQTT_ADMIN, MQTT_GATEWAY):
            if not self.mqtt_password(who).is_file():
                self._write(self.mqtt_password(who), secrets.token_urlsafe(24).encode())
        if not self.mqtt_vehicle_key.is_file():
            self._write(self.mqtt_vehicle_key, secrets.token_bytes(32))
        if not self.mqtt_server[0].is_file():
            ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
            if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
                raise StackError(f"{self.ca_key} is not the key of corridor's local CA")
            self._issue_mqtt(ca_key, x509.load_pem_x509_certificate(self.ca.read_bytes()))

    def _issue_mqtt(self, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
        loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        names = [*loopback, *(x509.DNSName(n) for n in self.mqtt_names)]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        key, cert = issue_cert(ca_key, ca_cert, _name("corridor-mqtt"), usages, names, _VALID)
        self._write(self.mqtt_server[0], _cert_pem(cert))
        self._write(self.mqtt_server[1], _key_pem(key))

    @property
    def tower_signing_key(self) -> Path:
        """The towers' Ed25519 key: they sign every advisory with it."""
        return self.folder / "tower-signing-key.pem"

    @property
    def advisory_keys(self) -> Path:
        """The towers' public keys, which vehicles trust: what they obey is signed by one of them."""
        return self.folder / "advisory-keys.pem"

    def ensure_signing(self) -> None:
        if not self.tower_signing_key.is_file():
            private = new_signing_key()
            self._write(self.tower_signing_key, private)
            self._write(self.advisory_keys, public_pem(private))

    @property
    def credentials_file(self) -> Path:
        return self.folder / "credentials.json"

    def exists(self) -> bool:
        return self.credentials_file.is_file()

    def credentials(self) -> dict[Role, tuple[str, str]]:
        users = json.loads(self.credentials_file.read_text())
        return {role: (users[role.value]["username"], users[role.value]["password"]) for role in Role}

    def _write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    def make(self) -> None:
        """Generate everything; the credentials file is written last, so its presence means complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self._issue_all(*self._new_ca())
        self.ensure_mqtt()
        self.ensure_signing()
        users = {role.value: {"username": role.value, "password": secrets.token_urlsafe(24)} for role in Role}
        self._write(self.credentials_file, json.dumps(users, indent=2).encode())

    def renew(self, new_ca: bool = False) -> None:
        """Every server and client certificate issued again, with fresh keys; the passwords (in the
        broker's storage) stay. From the kept CA, so clients that trust it go on trusting; a new CA
        with `new_ca`, or when the material predates a kept CA key (then every client must restart)."""
        if new_ca or not self.ca_key.is_file():
            self._issue_all(*self._new_ca())
            return
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise StackError(f"{self.ca_key} is not the key of corridor's local CA")
        self._issue_all(ca_key, x509.load_pem_x509_certificate(self.ca.read_bytes()))

    def _new_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        ca_key, ca_cert = new_ca("corridor local CA", _VALID)
        self._write(self.ca_key, _key_pem(ca_key))
        self._write(self.ca, _cert_pem(ca_cert))
        return ca_key, ca_cert

    def _issue_all(self, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
        def issue(
            cn: str, server: bool, names: tuple[str, ...] = ()
        ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
            sans: list[x509.GeneralName] = []
            if server:  # loopback, like everything the stack binds, and a cluster's names when given
                loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                sans = [*loopback, *(x509.DNSName(n) for n in names)]
            return issue_cert(ca_key, ca_cert, _name(cn), usages, sans, _VALID)

        key, cert = issue(BROKER_PRINCIPAL, server=True, names=self.kafka_names)
        self._write(self.broker_keystore, _key_pem(key) + _cert_pem(cert) + _cert_pem(ca_cert))
        key, cert = issue("corridor-etcd", server=True, names=self.etcd_names)
        self._write(self.etcd_server[0], _cert_pem(cert))
        self._write(self.etcd_server[1], _key_pem(key))
        self._issue_mqtt(ca_key, ca_cert)
        for role, user in ETCD_USERS.items():
            key, cert = issue(user, server=False)
            self._write(self.etcd_client(role)[0], _cert_pem(cert))
            self._write(self.etcd_client(role)[1], _key_pem(key))
