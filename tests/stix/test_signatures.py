"""Object signatures: Ed25519 over the canonical form, pinned keys, rotation, tampering."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kuroshio.stix import timestamps
from kuroshio.stix.signatures import SIGNATURE_EXTENSION, PinnedKey, SignatureError, Signer, Verifier
from kuroshio.stix.validate import validate

TWN = "identity--0f5c8a48-2f3f-4a4e-9a56-6b6f0f3b1a01"
JPN = "identity--5d0a1c55-0b3a-4c8b-8f1e-2f7c9d7e6a02"


def signer(identity: str) -> tuple[Signer, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return Signer(pem, identity), key


def report(modified: str = "2026-03-01T00:00:00.000Z") -> dict[str, Any]:
    return {"type": "report", "spec_version": "2.1", "id": "report--8d4b0f25-0d6c-4b7e-9e1a-5a4c3b2a1f00",
            "created": "2026-03-01T00:00:00.000Z", "modified": modified, "name": "Kuroshio ☃ report",
            "published": "2026-03-01T00:00:00Z", "report_types": ["threat-report"], "created_by_ref": TWN,
            "object_refs": ["indicator--1d4b0f25-0d6c-4b7e-9e1a-5a4c3b2a1f01"], "x_score": 0.1}


def test_a_signed_object_verifies_and_stays_valid_stix() -> None:
    s, key = signer(TWN)
    signed = s.sign(report())
    ext = signed["extensions"][SIGNATURE_EXTENSION]
    assert ext["signer"] == TWN and ext["key_id"] == s.key_id and len(ext["signature"]) == 86 and "proof" not in ext
    assert validate(signed, allow_custom=True) is None
    assert Verifier([PinnedKey.of(key.public_key(), TWN)]).verify(signed) == TWN
    assert s.sign(report()) == signed  # deterministic: re-signing the same object changes nothing
    # the canonical form rebuilt from the signed message is the object's own canonical form
    from kuroshio.stix.canonical import canonical

    signer_id, full = Verifier([PinnedKey.of(key.public_key(), TWN)]).verify_canonical(signed)
    assert signer_id == TWN and full == canonical(signed)


def test_any_change_breaks_the_signature() -> None:
    s, key = signer(TWN)
    verifier = Verifier([PinnedKey.of(key.public_key(), TWN)])
    signed = s.sign(report())
    for change in (lambda o: o.update(name="Kuroshio ☃ rep0rt"), lambda o: o["object_refs"].append(o["id"]),
                   lambda o: o.update(x_score=0.2), lambda o: o.pop("created_by_ref"),
                   lambda o: o.update(object_marking_refs=["marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"])):
        tampered = copy.deepcopy(signed)
        change(tampered)
        with pytest.raises(SignatureError) as err:
            verifier.verify(tampered)
        assert err.value.rule == "signature-invalid"


def test_unknown_key_wrong_signer_missing_and_malformed_are_refused() -> None:
    s, key = signer(TWN)
    other, other_key = signer(JPN)
    signed = s.sign(report())
    with pytest.raises(SignatureError) as err:
        Verifier([PinnedKey.of(other_key.public_key(), JPN)]).verify(signed)
    assert err.value.rule == "signature-unknown-key"
    # a key pinned for JPN cannot vouch for an object that claims TWN signed it
    forged = copy.deepcopy(signed)
    forged["extensions"][SIGNATURE_EXTENSION]["key_id"] = other.key_id
    with pytest.raises(SignatureError) as err:
        Verifier([PinnedKey.of(other_key.public_key(), JPN)]).verify(forged)
    assert err.value.rule == "signature-wrong-signer"
    verifier = Verifier([PinnedKey.of(key.public_key(), TWN)])
    with pytest.raises(SignatureError) as err:
        verifier.verify(report())
    assert err.value.rule == "signature-missing"
    bad = copy.deepcopy(signed)
    bad["extensions"][SIGNATURE_EXTENSION]["signature"] = "!!not base64!!"
    with pytest.raises(SignatureError) as err:
        verifier.verify(bad)
    assert err.value.rule in ("signature-malformed", "signature-invalid")


def test_rotated_keys_keep_old_signatures_valid_and_refuse_new_ones() -> None:
    s, key = signer(TWN)
    retired_at = timestamps.to_micros("2026-06-01T00:00:00.000Z")
    verifier = Verifier([PinnedKey.of(key.public_key(), TWN, not_after=retired_at)])
    assert verifier.verify(s.sign(report("2026-05-31T23:59:59.000Z"))) == TWN
    with pytest.raises(SignatureError) as err:
        verifier.verify(s.sign(report("2026-06-01T00:00:00.001Z")))
    assert err.value.rule == "signature-expired-key"


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in report()), _json, max_size=5),
       ext_extra=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=2))
def test_any_content_signs_and_verifies_and_rebuilds_its_canonical_form(extra: dict[str, Any],
                                                                        ext_extra: dict[str, Any]) -> None:
    from kuroshio.stix.canonical import canonical

    s, key = _KEYS
    obj = {**report(), **extra, "extensions": {"extension-definition--1d4b0f25-0d6c-4b7e-9e1a-5a4c3b2a1f02": {
        "extension_type": "property-extension", **ext_extra}}}
    signed = s.sign(obj)
    signer_id, full = Verifier([PinnedKey.of(key.public_key(), TWN)]).verify_canonical(signed)
    assert signer_id == TWN
    assert full is None or full == canonical(signed)
    # the signing side builds the stored form the same way: it must be the object's canonical form
    unsigned, message = s.unsigned(obj)
    (proof, signature), = s.sign_batch([message])
    assert s.signed_raw(unsigned, message, proof, signature) == canonical(signed)


_KEYS = signer(TWN)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 65, 130])
def test_a_batch_signs_each_object_verifiably_and_no_proof_moves_to_another(n: int) -> None:
    from kuroshio.stix.canonical import canonical
    from kuroshio.stix.signatures import with_signature

    s, key = _KEYS
    verifier = Verifier([PinnedKey.of(key.public_key(), TWN)])
    objs = [{**report(), "id": f"report--{uuid.UUID(int=i + 1, version=4)}", "name": f"r{i}"} for i in range(n)]
    unsigned = [s.unsigned(o) for o in objs]
    signed = s.sign_batch([m for _, m in unsigned])
    assert len({sig for _, sig in signed}) == -(-n // 64)  # one signature per batch of 64
    full = []
    for (u, m), (proof, sig) in zip(unsigned, signed, strict=True):
        obj = with_signature(u, proof, sig)
        assert verifier.verify(obj) == TWN
        assert s.signed_raw(u, m, proof, sig) == canonical(obj)
        full.append(obj)
    if n > 1:
        # a proof taken from another object of the batch does not vouch for this one
        swapped = copy.deepcopy(full[0])
        swapped["extensions"][SIGNATURE_EXTENSION]["proof"] = full[1]["extensions"][SIGNATURE_EXTENSION]["proof"]
        with pytest.raises(SignatureError) as err:
            verifier.verify(swapped)
        assert err.value.rule == "signature-invalid"
        # nor does changing the content of one object of a verified batch
        changed = copy.deepcopy(full[1])
        changed["name"] = "changed"
        with pytest.raises(SignatureError):
            verifier.verify(changed)


def test_one_object_signed_in_two_batches_is_the_same_content() -> None:
    from kuroshio.stix.canonical import canonical
    from kuroshio.stix.signatures import same_content, with_signature

    s, _ = _KEYS
    one, other = report(), {**report(), "id": "report--1d4b0f25-0d6c-4b7e-9e1a-5a4c3b2a1f09"}
    alone = canonical(s.sign(one))
    u, m = s.unsigned(one)
    (proof, sig), _ = s.sign_batch([m, s.unsigned(other)[1]])
    in_batch = canonical(with_signature(u, proof, sig))
    assert alone != in_batch and same_content(alone, in_batch)
    assert same_content(alone, canonical(one))  # signed or not, it is the same version
    assert not same_content(alone, canonical(s.sign({**one, "name": "another name"})))
