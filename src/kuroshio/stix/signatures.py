"""Object signatures: Ed25519 over RFC 8785 canonical forms, in batches (a Merkle tree), in our extension.

A signed object carries one property extension:

    "extensions": {"extension-definition--fbddce00-ad7b-43fa-b593-a6e939c94100": {
        "extension_type": "property-extension",
        "signer": "identity--<the organisation that vouches for the object>",
        "key_id": "<32 hex digits: the first 16 bytes of SHA-256 of the raw 32-byte public key>",
        "proof": ["L:<base64url SHA-256>", "R:<base64url SHA-256>", ...],
        "signature": "<base64url, no padding, of the 64-byte Ed25519 signature of the batch root>"}}

The object's **leaf message** is the RFC 8785 canonical JSON of the whole object with only the
`proof` and `signature` members of this extension removed (signer and key id are covered). Its
leaf hash is SHA-256(0x00 || message). The objects signed together form a Merkle tree whose inner
nodes are SHA-256(0x01 || left || right) (an odd node is carried up unchanged); `proof` lists the
sibling hashes from the leaf up, each saying whether the sibling is on the Left or the Right. The
signature is Ed25519 over "kuroshio-batch-v1:" || root. An object signed alone has an empty proof
(its root is its leaf hash). One signature vouches for a whole batch, so signing an envelope of a
thousand objects costs sixteen signatures, not a thousand, and a receiver verifies each batch root
once. Ed25519 is deterministic, so the same batch signed twice is the same bytes.

A receiver checks the signature against a pinned key of the signer that had not expired at the
object's version time (`modified`, else `created`; objects without either need a key valid now),
so keys rotate while what they signed stays verifiable (docs/federation.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from . import timestamps
from .canonical import CanonicalError, canonical

SIGNATURE_EXTENSION = "extension-definition--fbddce00-ad7b-43fa-b593-a6e939c94100"
BATCH = 64  # objects per signed batch: proofs of at most six hashes
_ROOT_PREFIX = b"kuroshio-batch-v1:"
_SIGNED_FIELDS = ("proof", "signature")  # the members of the extension the leaf message leaves out


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def leaf_hash(message: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + message).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle(leaves: list[bytes]) -> tuple[bytes, list[list[str]]]:
    """The root of the leaves' tree and, per leaf, its proof (sibling hashes from the leaf up)."""
    proofs: list[list[str]] = [[] for _ in leaves]
    level = [(h, [i]) for i, h in enumerate(leaves)]  # (hash, the leaves under it)
    while len(level) > 1:
        up = []
        for k in range(0, len(level) - 1, 2):
            (lh, lleaves), (rh, rleaves) = level[k], level[k + 1]
            right, left = "R:" + _b64(rh), "L:" + _b64(lh)
            for i in lleaves:
                proofs[i].append(right)
            for i in rleaves:
                proofs[i].append(left)
            up.append((_node(lh, rh), lleaves + rleaves))
        if len(level) % 2:
            up.append(level[-1])  # an odd node is carried up unchanged
        level = up
    return level[0][0], proofs


def root_of(leaf: bytes, proof: list[str]) -> bytes:
    h = leaf
    for step in proof:
        side, sibling = step[:2], _unb64(step[2:])
        if len(sibling) != 32 or side not in ("L:", "R:"):
            raise ValueError("a proof step is not L:/R: and a base64url SHA-256")
        h = _node(sibling, h) if side == "L:" else _node(h, sibling)
    return h


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
    ext = {k: v for k, v in obj["extensions"][SIGNATURE_EXTENSION].items() if k not in _SIGNED_FIELDS}
    return {**obj, "extensions": {**obj["extensions"], SIGNATURE_EXTENSION: ext}}


def same_content(a: bytes, b: bytes) -> bool:
    """Whether two canonical forms of one object version say the same thing, whoever signed them and in
    whatever batch: the same object signed in two envelopes carries two proofs (or none at all)."""
    if a == b:
        return True
    marker = SIGNATURE_EXTENSION.encode()
    if marker not in a and marker not in b:
        return False
    try:
        return _without_signature(orjson.loads(a)) == _without_signature(orjson.loads(b))
    except orjson.JSONDecodeError:
        return False


def _without_signature(obj: Any) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get("extensions"), dict):
        return obj
    exts = {k: v for k, v in obj["extensions"].items() if k != SIGNATURE_EXTENSION}
    out = {k: v for k, v in obj.items() if k != "extensions"}
    if exts:
        out["extensions"] = exts
    return out


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
        """The object with this node's signature, alone in its batch (any earlier signature is replaced)."""
        out, message = self.unsigned(obj)
        (proof, signature), = self.sign_batch([message])
        return with_signature(out, proof, signature)

    def unsigned(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The object with this node's signature extension but no proof and signature yet, and its leaf message."""
        ext = {"extension_type": "property-extension", "signer": self.identity, "key_id": self.key_id}
        out = {**obj, "extensions": {**(obj.get("extensions") or {}), SIGNATURE_EXTENSION: ext}}
        return out, canonical(out)

    def sign_batch(self, messages: list[bytes]) -> list[tuple[list[str], str]]:
        """(proof, signature) per leaf message, signing batches of at most BATCH objects."""
        self.key  # noqa: B018 (loads the key)
        assert self._sodium is not None
        out: list[tuple[list[str], str]] = []
        for i in range(0, len(messages), BATCH):
            root, proofs = merkle([leaf_hash(m) for m in messages[i:i + BATCH]])
            signature = _b64(self._sodium.sign(_ROOT_PREFIX + root).signature)
            out.extend((p, signature) for p in proofs)
        return out

    def signed_raw(self, unsigned: dict[str, Any], message: bytes, proof: list[str], signature: str) -> bytes:
        """The canonical JSON of the signed object: the leaf message with proof and signature put in their sorted
        place between key_id and signer (serialised again only if that place is not unambiguous)."""
        return _splice(message, self.key_id, proof, signature) or canonical(with_signature(unsigned, proof, signature))


def with_signature(unsigned: dict[str, Any], proof: list[str], signature: str) -> dict[str, Any]:
    """The object with its proof (omitted when empty: STIX lists are never empty) and signature."""
    exts = unsigned["extensions"]
    ext = {**exts[SIGNATURE_EXTENSION], **({"proof": proof} if proof else {}), "signature": signature}
    return {**unsigned, "extensions": {**exts, SIGNATURE_EXTENSION: ext}}


def _splice(message: bytes, kid: str, proof: list[str], signature: str) -> bytes | None:
    """The canonical JSON of a signed object from its leaf message: proof and signature go in their sorted
    place, between key_id and signer. None when that place is not unambiguous in the message."""
    tail = b'"key_id":"' + kid.encode() + b'","signer":'
    if message.count(tail) != 1:
        return None
    head = b'"proof":[' + b",".join(b'"' + p.encode() + b'"' for p in proof) + b"]," if proof else b""
    return message.replace(tail, b'"key_id":"' + kid.encode() + b'",' + head + b'"signature":"'
                           + signature.encode() + b'","signer":')


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
        # batch roots whose signature verified: (key id, root, signature); the other objects of a batch
        # then cost a few hashes. Only successes are kept, bounded.
        self._roots: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()

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
        proof = ext.get("proof", [])
        if not all(isinstance(v, str) for v in (signer, kid, sig)) or not isinstance(proof, list) \
                or len(proof) > 64 or not all(isinstance(p, str) for p in proof):
            raise SignatureError("signature-malformed", "its signature extension needs signer, key_id and signature "
                                                        "(strings) and proof (a list of strings)")
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
            raw_sig = _unb64(sig)
            message = canonical(_unsigned(obj))
            root = root_of(leaf_hash(message), proof)
        except (ValueError, binascii.Error, CanonicalError):
            raise SignatureError("signature-malformed", "its signature or proof is not base64url") from None
        if len(raw_sig) != 64:
            raise SignatureError("signature-malformed", "its signature is not 64 bytes (Ed25519)")
        seen = (kid, root, raw_sig)
        if seen in self._roots:
            self._roots.move_to_end(seen)
        else:
            public = self._loaded.get(kid)
            if public is None:
                public = self._loaded[kid] = VerifyKey(key.public)
            try:
                public.verify(_ROOT_PREFIX + root, raw_sig)
            except (BadSignatureError, ValueError):
                raise SignatureError("signature-invalid", f"its signature by key {kid} does not match its content: "
                                                          "it was changed after it was signed") from None
            self._roots[seen] = None
            if len(self._roots) > 4096:
                self._roots.popitem(last=False)
        # the whole object's canonical form is the message with proof and signature put back, when the
        # extension holds nothing else and both can be spliced in as they are
        spliceable = len(ext) == (5 if proof else 4) and _plain(sig) and all(_plain(p) for p in proof)
        return signer, _splice(message, kid, proof, sig) if spliceable else None


def _plain(text: str) -> bool:
    """Needs no escaping in JSON and is the same in RFC 8785 form (so it can be spliced in as it is)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text
