"""Signed advisories: a tower signs each advisory it sends, a vehicle obeys only what a tower signed.

The radio is anyone's: without a signature any transmitter could tell a vehicle to stop, or to go on
towards a hazard. Each tower principal has an Ed25519 key (`cryptography`, OpenSSL underneath); the
signature covers the advisory's bytes exactly as encoded, and travels beside them: a Kafka header,
then an MQTT 5 user property (base64), so the record and its schema are unchanged. It names its key
(the first 8 bytes of the public key's SHA-256), so keys can be added and retired without a flag day.
The target vehicle, region and validity are inside the signed bytes: a signed advisory replayed to
another vehicle names the wrong one, and one replayed later has lapsed.

What this does not reproduce of IEEE 1609.2 / ETSI TS 103 097 (how V2X deployments sign): no
certificate chain to a root authority with permissions (PSID/SSP), no pseudonym certificates or
their rotation for privacy, no certificate revocation lists, and ECDSA over P-256 is theirs where
this is Ed25519. The trust here is a list of tower public keys given to every vehicle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["SIGNATURE", "Signer", "Verifier", "key_id", "new_signing_key", "public_pem", "signature_text"]

#: the Kafka header and MQTT 5 user property that carry an advisory's signature
SIGNATURE = "corridor-sig"
_ID = 8  # bytes of key id before the 64 of the signature
_LENGTH = _ID + 64


def key_id(public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:_ID]


def new_signing_key() -> bytes:
    """A fresh tower key, as PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key")
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signature_text(signature: bytes) -> str:
    """As an MQTT 5 user property carries it (UTF-8 only)."""
    return base64.b64encode(signature).decode()


class Signer:
    def __init__(self, private_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("a tower's signing key must be Ed25519")
        self._key, self.key_id = key, key_id(key.public_key())

    def sign(self, value: bytes) -> bytes:
        return self.key_id + self._key.sign(value)


class Verifier:
    """The towers' public keys a vehicle trusts; `problem` says why an advisory is not believed."""

    def __init__(self, public_pems: Iterable[bytes]) -> None:
        self._keys: dict[bytes, Ed25519PublicKey] = {}
        for pem in public_pems:
            key = serialization.load_pem_public_key(pem)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("a tower's public key must be Ed25519")
            self._keys[key_id(key)] = key

    @classmethod
    def from_pem_file(cls, text: bytes) -> Verifier:
        """Every public key in a PEM file (one or more, concatenated)."""
        marker = b"-----END PUBLIC KEY-----"
        blocks = [b + marker for b in text.split(marker) if b.strip()]
        if not blocks:
            raise ValueError("no public key in it")
        return cls(blocks)

    def problem(self, value: bytes, signature: bytes | str | None) -> str | None:
        if signature is None:
            return "unsigned"
        if isinstance(signature, str):  # off the radio: base64
            try:
                signature = base64.b64decode(signature[:200], validate=True)
            except (binascii.Error, ValueError):
                return "bad-signature: not base64"
        if len(signature) != _LENGTH:
            return f"bad-signature: {len(signature)} bytes, not {_LENGTH}"
        key = self._keys.get(signature[:_ID])
        if key is None:
            return "unknown-signer"
        try:
            key.verify(signature[_ID:], value)
        except InvalidSignature:
            return "bad-signature"
        return None
