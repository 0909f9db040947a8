"""Signed advisories: what a tower signs a vehicle believes; anything else is named for what it is."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.shared.advisory_signing import Signer, Verifier, new_signing_key, public_pem, signature_text

KEY = new_signing_key()
SIGNER = Signer(KEY)
VERIFIER = Verifier([public_pem(KEY)])


@given(st.binary(max_size=300))
def test_what_a_tower_signs_is_believed_as_it_came_by_kafka_and_by_radio(value: bytes) -> None:
    signature = SIGNER.sign(value)
    assert VERIFIER.problem(value, signature) is None
    assert VERIFIER.problem(value, signature_text(signature)) is None


@given(st.binary(min_size=1, max_size=300), st.integers(0, 10_000))
def test_a_changed_byte_breaks_the_signature(value: bytes, at: int) -> None:
    signature = SIGNER.sign(value)
    i = at % len(value)
    changed = value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1 :]
    assert VERIFIER.problem(changed, signature) == "bad-signature"


def test_unsigned_unknown_keys_garbage_and_other_keys_are_each_refused_with_their_reason() -> None:
    value = b"advice"
    other = Signer(new_signing_key())
    assert VERIFIER.problem(value, None) == "unsigned"
    assert VERIFIER.problem(value, other.sign(value)) == "unknown-signer"
    forged = SIGNER.key_id + other.sign(value)[8:]  # another key's signature under this tower's id
    assert VERIFIER.problem(value, forged) == "bad-signature"
    for junk in (b"", b"x" * 71, b"x" * 500, "not base64 !", base64.b64encode(b"short").decode()):
        problem = VERIFIER.problem(value, junk)
        assert problem is not None and problem.startswith("bad-signature"), (junk, problem)


def test_a_vehicle_trusts_every_key_of_its_file_so_keys_can_be_rolled() -> None:
    second = new_signing_key()
    both = Verifier.from_pem_file(public_pem(KEY) + public_pem(second))
    assert both.problem(b"v", Signer(second).sign(b"v")) is None and both.problem(b"v", SIGNER.sign(b"v")) is None


def test_a_key_that_is_not_ed25519_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        Signer(pem)
    with pytest.raises(ValueError):
        Verifier.from_pem_file(b"nothing here")
