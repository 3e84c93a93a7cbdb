"""Object signatures: Ed25519 over the RFC 8785 canonical form, carried in Kuroshio's signature extension.

A signed object carries one property extension:

    "extensions": {"extension-definition--fbddce00-ad7b-43fa-b593-a6e939c94100": {
        "extension_type": "property-extension",
        "signer": "identity--<the organisation that vouches for the object>",
        "key_id": "<32 hex digits: the first 16 bytes of SHA-256 of the raw 32-byte public key>",
        "signature": "<base64url, no padding, of the 64-byte Ed25519 signature>"}}

The signed message is the RFC 8785 canonical JSON of the whole object with only the `signature`
member of this extension removed: the signer and key id are covered too. Ed25519 is deterministic,
so the same object signed twice with one key is the same bytes (re-importing a file changes nothing).
A receiver checks the signature against a pinned key of the signer that had not expired at the
object's version time (`modified`, else `created`; objects without either need a key valid now),
so keys rotate while what they signed stays verifiable (docs/federation.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from . import timestamps
from .canonical import CanonicalError, canonical

SIGNATURE_EXTENSION = "extension-definition--fbddce00-ad7b-43fa-b593-a6e939c94100"


class SignatureError(Exception):
    """An object's signature is missing, malformed, made by an unknown or expired key, or wrong."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_text(public: Ed25519PublicKey) -> str:
    """A public key as it travels in partner cards: base64url of its 32 raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_from_text(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not an Ed25519 public key (base64url of 32 bytes expected): {exc}") from None


def _unsigned(obj: dict[str, Any]) -> dict[str, Any]:
    ext = dict(obj["extensions"][SIGNATURE_EXTENSION])
    ext.pop("signature", None)
    return {**obj, "extensions": {**obj["extensions"], SIGNATURE_EXTENSION: ext}}


class Signer:
    """Signs the objects a node originates with its current key. Holds the key as PEM so that it can
    travel to ingest worker processes; the key itself is loaded once per process."""

    def __init__(self, pem: bytes, identity: str) -> None:
        self.pem = pem
        self.identity = identity
        self._key: Ed25519PrivateKey | None = None
        self._key_id = ""
        self._sodium: SigningKey | None = None  # the same key in libsodium, which signs faster here

    @classmethod
    def from_file(cls, path: Path, identity: str) -> Signer:
        return cls(path.read_bytes(), identity)

    def __getstate__(self) -> dict[str, Any]:
        return {"pem": self.pem, "identity": self.identity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["pem"], state["identity"])  # type: ignore[misc]

    @property
    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            key = serialization.load_pem_private_key(self.pem, password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("the node's signing key is not an Ed25519 key")
            self._key = key
            self._key_id = key_id(key.public_key())
            self._sodium = SigningKey(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                        serialization.NoEncryption()))
        return self._key

    @property
    def key_id(self) -> str:
        self.key  # noqa: B018 (loads the key and its id)
        return self._key_id

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object with this node's signature (any earlier signature extension is replaced)."""
        out, message = self.unsigned(obj)
        return with_signature(out, self.signature(message))

    def unsigned(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The object with this node's signature extension but no signature yet, and the message to sign."""
        ext = {"extension_type": "property-extension", "signer": self.identity, "key_id": self.key_id}
        out = {**obj, "extensions": {**(obj.get("extensions") or {}), SIGNATURE_EXTENSION: ext}}
        return out, canonical(out)

    def signature(self, message: bytes) -> str:
        """The signature of a message, base64url (libsodium releases the GIL: callable from threads)."""
        self.key  # noqa: B018 (loads the key)
        assert self._sodium is not None
        return base64.urlsafe_b64encode(self._sodium.sign(message).signature).rstrip(b"=").decode()

    def signed_raw(self, unsigned: dict[str, Any], message: bytes, signature: str) -> bytes:
        """The canonical JSON of the signed object: the message with the signature member put in its sorted
        place between key_id and signer (serialised again only if that place is not unambiguous)."""
        tail = b'"key_id":"' + self.key_id.encode() + b'","signer":'
        if message.count(tail) == 1:
            return message.replace(tail, b'"key_id":"' + self.key_id.encode() + b'","signature":"'
                                   + signature.encode() + b'","signer":')
        return canonical(with_signature(unsigned, signature))


def with_signature(unsigned: dict[str, Any], signature: str) -> dict[str, Any]:
    exts = unsigned["extensions"]
    return {**unsigned, "extensions": {**exts, SIGNATURE_EXTENSION: {**exts[SIGNATURE_EXTENSION],
                                                                     "signature": signature}}}


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """A public key this node trusts for one organisation; it signs versions up to not_after (micros)."""

    key_id: str
    identity: str  # the organisation's STIX identity id
    public: bytes  # the raw 32-byte key (picklable; loaded on use)
    not_before: int = 0
    not_after: int | None = None

    @classmethod
    def of(cls, public: Ed25519PublicKey, identity: str, not_before: int = 0,
           not_after: int | None = None) -> PinnedKey:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(key_id(public), identity, raw, not_before, not_after)


class Verifier:
    """Checks signatures against the keys this node has pinned (its partners' and its own)."""

    def __init__(self, keys: list[PinnedKey]) -> None:
        self.keys = {k.key_id: k for k in keys}
        self._loaded: dict[str, VerifyKey] = {}  # libsodium: about twice as fast as OpenSSL's Ed25519 here

    def __getstate__(self) -> dict[str, Any]:
        return {"keys": list(self.keys.values())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["keys"])  # type: ignore[misc]

    def verify(self, obj: dict[str, Any], now_micros: int | None = None) -> str:
        """The identity id of the organisation whose key signed `obj`; SignatureError if it did not."""
        return self.verify_canonical(obj, now_micros)[0]

    def verify_canonical(self, obj: dict[str, Any], now_micros: int | None = None) -> tuple[str, bytes | None]:
        """As verify(), with the canonical JSON of the whole signed object when it could be had from the
        signed message without serialising the object again (None otherwise)."""
        ext = (obj.get("extensions") or {}).get(SIGNATURE_EXTENSION) if isinstance(obj.get("extensions"), dict) \
            else None
        if not isinstance(ext, dict):
            raise SignatureError("signature-missing", "carries no Kuroshio signature: a partner accepts only objects "
                                                      "signed by the organisation that vouches for them")
        signer, kid, sig = (ext.get(k) for k in ("signer", "key_id", "signature"))
        if not all(isinstance(v, str) for v in (signer, kid, sig)):
            raise SignatureError("signature-malformed", "its signature extension needs signer, key_id and signature, "
                                                        "all strings")
        assert isinstance(kid, str) and isinstance(sig, str)
        key = self.keys.get(kid)
        if key is None:
            raise SignatureError("signature-unknown-key", f"is signed by key {kid}, which this node has not pinned for "
                                                          "any partner")
        if key.identity != signer:
            raise SignatureError("signature-wrong-signer", f"names signer {signer} but key {kid} belongs to "
                                                           f"{key.identity}")
        if key.not_after is not None:
            stated = obj.get("modified") or obj.get("created")
            when = timestamps.to_micros(stated) if isinstance(stated, str) else (
                timestamps.now_micros() if now_micros is None else now_micros)
            if when > key.not_after:
                raise SignatureError("signature-expired-key", f"is signed by key {kid}, which expired at "
                                                              f"{timestamps.from_micros(key.not_after)}, before the "
                                                              "version it signs")
        try:
            raw_sig = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
            message = canonical(_unsigned(obj))
        except (ValueError, binascii.Error, CanonicalError):
            raise SignatureError("signature-malformed", "its signature is not base64url") from None
        if len(raw_sig) != 64:
            raise SignatureError("signature-malformed", "its signature is not 64 bytes (Ed25519)")
        public = self._loaded.get(kid)
        if public is None:
            public = self._loaded[kid] = VerifyKey(key.public)
        try:
            public.verify(message, raw_sig)
        except (BadSignatureError, ValueError):
            raise SignatureError("signature-invalid", f"its signature by key {kid} does not match its content: it "
                                                      "was changed after it was signed") from None
        # the whole object's canonical form is the message with the signature member put back: in the
        # extension's sorted members it sits between key_id and signer
        tail = b'"key_id":"' + kid.encode() + b'","signer":'
        full = None
        if message.count(tail) == 1 and len(ext) == 4 and sig.isascii() and '"' not in sig and "\\" not in sig:
            full = message.replace(tail, b'"key_id":"' + kid.encode() + b'","signature":"' + sig.encode()
                                   + b'","signer":')
        return signer, full
