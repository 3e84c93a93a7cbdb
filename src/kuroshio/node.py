"""A node: its configuration, store and keys; creating a node home; organisations and users; authentication."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pycountry
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .audit import HEAD_FILE, HeadFile
from .config import CONFIG_FILE, ApiRootConfig, ConfigError, KeyConfig, NodeConfig
from .ingest import NO_PROVENANCE, Preparer, Provenance, ingest
from .markings.definitions import TLP2, TLP_OBJECTS, kuroshio_objects
from .principals import (
    PARTNER_NODE_PREFIX,
    Principal,
    Role,
    User,
    burn_password_check,
    hash_password,
    new_token,
    split_token,
    token_matches,
    verify_password,
)
from .stix import timestamps
from .stix.identifiers import new_id
from .stix.signatures import SIGNATURE_EXTENSION, PinnedKey, Signer, Verifier, public_from_text, public_text
from .store import Collection, Page, StatusRecord, Store, open_store

DEFAULT_COLLECTIONS = (
    # alias, title, description, allow_custom, the marking of objects that carry none
    ("shared", "Shared intelligence", "STIX 2.1 intelligence exchanged with partners", False, TLP2["green"]),
    ("reference", "Reference frameworks",
     "Third-party reference content such as MITRE ATT&CK, with its custom object types", True, TLP2["clear"]),
)


class NodeError(Exception):
    """An operation on the node failed; the message says what, where and what to do."""


def identity_object(name: str, *, sectors: list[str] | None = None) -> dict[str, Any]:
    now = timestamps.now()
    obj: dict[str, Any] = {
        "type": "identity", "spec_version": "2.1", "id": new_id("identity"), "created": now, "modified": now,
        "name": name, "identity_class": "organization",
    }
    if sectors:
        obj["sectors"] = sectors
    return obj


@dataclass
class _CachedLogin:
    user_id: int
    password_hash: str  # the hash the password was verified against: a changed password voids the entry
    expires: float


class Node:
    """One partner's node: configuration + store + signing key."""

    LOGIN_CACHE_SECONDS = 300.0

    def __init__(self, config: NodeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.preparer = Preparer(config.ingest_workers)
        self._login_key = secrets.token_bytes(32)  # keys the in-memory cache of verified passwords
        self._logins: dict[bytes, _CachedLogin] = {}
        self._logins_lock = threading.Lock()
        self.audit_head = HeadFile(config.home / HEAD_FILE, config.path(config.signing_key))
        store.on_audit = self.audit_head.write  # a signed copy of the audit chain's end, outside the database
        self.signer = Signer.from_file(config.path(config.signing_key), config.identity)
        self.verifier = Verifier(self.pinned_keys())
        self._config_mtime = _mtime(config.home / CONFIG_FILE)
        self._written = threading.Condition()  # notified after each write: wakes the pushes to partners
        self.writes = 0  # how many writes this process has made (pushes wait for the next one)
        self.tls_context: Any = None  # the running server's TLS context (tls.server_config), if any

    # -- provenance --
    def pinned_keys(self) -> list[PinnedKey]:
        """The keys this node trusts: its own (current and retired) and each partner's."""
        cfg = self.config
        keys = [PinnedKey.of(self.signer.key.public_key(), cfg.identity, _micros(cfg.signing_key_since))]
        entries = [(cfg.identity, k) for k in cfg.retired_keys]
        entries += [(p.identity, k) for p in cfg.partners for k in p.keys]
        for identity, k in entries:
            keys.append(PinnedKey.of(public_from_text(k.public), identity, _micros(k.not_before),
                                     _micros(k.not_after) if k.not_after else None))
        return keys

    def rotate_key(self) -> str:
        """Replace the node's signing key: the old key is retired (its public half stays in node.toml with the
        moment it stopped signing, so what it signed stays verifiable), the audit head is signed again.
        Returns the new key id. Partners need the new partner card."""
        cfg = self.config
        head = self.audit_head.read()  # verified with the old key before it goes
        old = self.signer.key.public_key()
        now = timestamps.now()
        path = cfg.path(cfg.signing_key)
        fresh = path.with_name(f".{path.name}.new")
        fresh.unlink(missing_ok=True)
        _write_signing_key(fresh)
        os.replace(fresh.with_suffix(".pub"), path.with_suffix(".pub"))
        os.replace(fresh, path)
        cfg.retired_keys.append(KeyConfig(public_text(old), cfg.signing_key_since, now))
        cfg.signing_key_since = now
        cfg.save()
        self._load_signing_key()
        if head is not None:
            self.audit_head.write(head[0], head[1], force=True)
        return self.signer.key_id

    def _load_signing_key(self) -> None:
        self.signer = Signer.from_file(self.config.path(self.config.signing_key), self.config.identity)
        self.audit_head = HeadFile(self.config.home / HEAD_FILE, self.config.path(self.config.signing_key))
        self.store.on_audit = self.audit_head.write
        self.reload_keys()

    @functools.cached_property
    def home_org_id(self) -> int:
        """The id of the organisation running the node (it never changes: looked up once)."""
        org = self.store.organisation(self.config.org)
        if org is None:
            raise NodeError(f"the node's organisation {self.config.org} is missing from the store")
        return org.id

    def reload_keys(self) -> None:
        self.verifier = Verifier(self.pinned_keys())
        self.trust_partner_cas()

    def trust_partner_cas(self) -> None:
        """Mutual TLS: let the running server accept client certificates of partners added since it started."""
        cfg = self.config
        if self.tls_context is not None and cfg.tls_client_ca and cfg.path(cfg.tls_client_ca).is_file():
            self.tls_context.load_verify_locations(cafile=str(cfg.path(cfg.tls_client_ca)))

    def refresh_config(self) -> bool:
        """Pick up partner links and keys another process (`kuroshio partner ...`) changed in node.toml."""
        path = self.config.home / CONFIG_FILE
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime == self._config_mtime:
            return False
        fresh = NodeConfig.load(self.config.home)
        self.config.partners = fresh.partners
        self.config.retired_keys = fresh.retired_keys
        self._config_mtime = mtime
        if fresh.signing_key_since != self.config.signing_key_since:  # the key was rotated by `kuroshio key`
            self.config.signing_key_since = fresh.signing_key_since
            self._load_signing_key()
        else:
            self.reload_keys()
        return True

    def provenance_for(self, principal: Principal) -> Provenance:
        """A partner node's objects must verify; what the home organisation's users write is signed."""
        if principal.username.startswith(PARTNER_NODE_PREFIX):
            self.refresh_config()  # keys pinned by `kuroshio partner add` in another process count at once
            return Provenance(verifier=self.verifier, home_org=self.home_org_id, home_identity=self.config.identity)
        if principal.org.home:
            return Provenance(signer=self.signer)
        return NO_PROVENANCE

    def for_partner(self, principal: Principal, page: Page) -> Page:
        """A page as a partner's node receives it. The partner's own objects are left out (it has them; no
        echo). Reader copies that had parts removed no longer match their originator's signature: those
        this node originated are signed again, as copies; those another organisation originated cannot be,
        and are withheld (the partner would refuse them). Paging continues after every row read."""
        if not principal.username.startswith(PARTNER_NODE_PREFIX) or not page.rows:
            return page
        partner = principal.org.identity_id.encode()
        if not any(r.redacted or (r.raw is not None and partner in r.raw) for r in page.rows):
            return page
        rows = []
        resign: list[tuple[int, dict[str, Any], bytes]] = []  # (index in rows, unsigned copy, leaf message)
        for r in page.rows:
            if r.raw is None or not (r.redacted or partner in r.raw):
                rows.append(r)
                continue
            obj = orjson.loads(r.raw)
            ext = (obj.get("extensions") or {}).get(SIGNATURE_EXTENSION)
            signer = ext.get("signer") if isinstance(ext, dict) else None
            if signer == principal.org.identity_id:
                continue  # the partner's own object
            if r.redacted:
                if signer != self.config.identity:
                    continue
                unsigned, message = self.signer.unsigned(obj)
                resign.append((len(rows), unsigned, message))
            rows.append(r)
        if resign:  # the copies of this page signed as one batch
            signed = self.signer.sign_batch([m for _, _, m in resign])
            for (i, unsigned, message), (proof, signature) in zip(resign, signed, strict=True):
                rows[i] = rows[i]._replace(raw=self.signer.signed_raw(unsigned, message, proof, signature))
        dates = [r.date_added for r in page.rows]
        return Page(rows, page.more, (min(dates), max(dates)))

    def ingest(self, principal: Principal, coll: Collection, objects: list[Any], *, status_id: str | None = None,
               body: bytes | None = None, checkpoint: tuple[str, str] | None = None,
               provenance: Provenance | None = None) -> StatusRecord:
        """The one way in, with this node's signing and verification (ingest.py)."""
        record = ingest(self.store, principal, coll, objects, status_id=status_id, preparer=self.preparer, body=body,
                        provenance=self.provenance_for(principal) if provenance is None else provenance,
                        checkpoint=checkpoint)
        if record.success_count:
            with self._written:
                self.writes += 1
                self._written.notify_all()
        return record

    def wait_for_write(self, seen: int, timeout: float) -> int:
        """Wait until this process has written more than `seen` times (or `timeout` seconds); the count."""
        with self._written:
            self._written.wait_for(lambda: self.writes > seen, timeout)
            return self.writes

    # -- opening and creating --
    @classmethod
    def open(cls, home: str | Path, *, migrate: bool = True) -> Node:
        home = Path(home).resolve()
        config = NodeConfig.load(home)
        store = open_store(config.store_url, base_dir=home)
        if migrate:
            store.migrate()
        return cls(config, store)

    @classmethod
    def init(cls, home: str | Path, org: str, *, org_name: str | None = None, store_url: str | None = None,
             port: int | None = None, api_root: str = "intel", tls: bool = False, mutual_tls: bool = False,
             hosts: list[str] | None = None) -> Node:
        home = Path(home).resolve()
        if (home / CONFIG_FILE).exists():
            raise NodeError(f"{home} is already a node home ({CONFIG_FILE} exists): use another directory")
        if not org or not org.replace("-", "").replace("_", "").isalnum():
            raise NodeError(f"organisation name '{org}' must be letters, digits, '-' or '_' (e.g. TWN)")
        home.mkdir(parents=True, exist_ok=True)
        identity = identity_object(org_name or org)
        config = NodeConfig(home=home, org=org, org_name=org_name or org, identity=identity["id"],
                            title=f"Kuroshio node {org}",
                            description=f"Partner node of {org_name or org}",
                            api_roots=[ApiRootConfig(api_root, "Intelligence", "STIX 2.1 intelligence shared by this node")])
        if store_url:
            config.store_url = store_url
        if port:
            config.port = port
        _write_signing_key(config.path(config.signing_key))
        config.signing_key_since = timestamps.now()
        if tls or mutual_tls:
            from .tls import CLIENT_CAS, create_node_pki

            create_node_pki(config, hosts)
            if mutual_tls:
                config.tls_client_ca = CLIENT_CAS
        config.save()
        store = open_store(config.store_url, base_dir=home)
        store.migrate()
        node = cls(config, store)
        home_org = store.add_organisation(org, identity, home=True, community=config.community)
        for alias, title, description, allow_custom, marking in DEFAULT_COLLECTIONS:
            coll = store.add_collection(api_root, alias, title, description, allow_custom=allow_custom,
                                        default_marking=marking)
            store.grant(coll.id, home_org.id, can_read=True, can_write=True)
        node.publish(published_at_init(), "reference")
        node.publish_identity(identity)
        return node

    def close(self) -> None:
        self.preparer.close()
        self.store.close()

    # -- organisations and users --
    def operator(self) -> Principal:
        """The node's own administrator, as the command line acts (it has the node's files)."""
        org = self.store.organisation(self.config.org)
        if org is None:
            raise NodeError(f"the node's organisation {self.config.org} is missing from the store")
        user = User(0, "kuroshio-operator", org.id, Role.ADMIN, None, False)
        return self.store.principal(user)

    def publish(self, objects: list[dict[str, Any]], alias: str = "shared") -> None:
        """Store objects as the node itself (in the shared collection by default); any refusal is an error."""
        coll = self.collection(self.config.default_api_root, alias)
        record = self.ingest(self.operator(), coll, objects)
        if record.failure_count:
            raise NodeError(f"the node could not publish its own objects: {record.details.decode()}")

    def publish_identity(self, identity: dict[str, Any]) -> None:
        self.publish([identity])

    def ensure_organisation(self, name: str, *, partner: bool = False, client_of: str | None = None,
                            country: str | None = None) -> Any:
        """The organisation `name`, created when missing. A partner joins the node's community (it
        receives TLP:GREEN); a client of an organisation receives that organisation's TLP:AMBER."""
        org = self.store.organisation(name)
        if org is None:
            identity = identity_object(name)
            patron = self._org_named(client_of).id if client_of else None
            org = self.store.add_organisation(name, identity, community=self.config.community if partner else None,
                                              client_of=patron, country=_country(country))
            self.publish_identity(identity)
        return org

    def set_organisation(self, name: str, *, partner: bool | None = None, client_of: str | None = None,
                         country: str | None = None) -> Any:
        org = self._org_named(name)
        community = org.community if partner is None else (self.config.community if partner else None)
        patron = org.client_of if client_of is None else (self._org_named(client_of).id if client_of else None)
        if patron == org.id:
            raise NodeError(f"organisation {name} cannot be its own client")
        self.store.set_organisation(org.id, community=community, client_of=patron,
                                    country=org.country if country is None else _country(country))
        return self._org_named(name)

    def _org_named(self, name: str) -> Any:
        org = self.store.organisation(name)
        if org is None:
            names = ", ".join(o.name for o in self.store.organisations()) or "none"
            raise NodeError(f"no organisation '{name}' on this node (organisations: {names})")
        return org

    def add_user(self, username: str, role: Role, *, org: str | None = None, password: str | None = None,
                 token: bool = False, token_label: str = "") -> tuple[User, str | None]:
        if not username or len(username) > 128 or any(c in username for c in ":\x00\r\n"):
            raise NodeError(f"user name '{username}' is not allowed: 1 to 128 characters, no ':' or control characters")
        organisation = self.ensure_organisation(org or self.config.org)
        user = self.store.add_user(username, organisation.id, role, hash_password(password) if password else None)
        shown = None
        if token:
            shown, token_id, secret_hash = new_token()
            self.store.add_token(user.id, token_id, secret_hash, token_label)
        return user, shown

    def collection(self, api_root: str, key: str) -> Collection:
        coll = self.store.collection(api_root, key)
        if coll is None:
            names = ", ".join(c.alias for c in self.store.collections(api_root)) or "none"
            raise NodeError(f"no collection '{key}' in API root '{api_root}' (collections: {names})")
        return coll

    # -- authentication --
    def authenticate_password(self, username: str, password: str) -> Principal | None:
        digest = hmac.new(self._login_key, f"{username}\x00{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._logins_lock:
            hit = self._logins.get(digest)
        if hit is not None and hit.expires > now:
            user = self.store.user_by_id(hit.user_id)
            if (user is not None and not user.disabled and user.username == username
                    and user.password_hash == hit.password_hash):
                return self.store.principal(user)
        user = self.store.user(username)
        if user is None:
            burn_password_check(password)
            return None
        if user.disabled or not verify_password(user.password_hash, password):
            return None
        with self._logins_lock:
            if len(self._logins) > 10000:
                self._logins.clear()
            self._logins[digest] = _CachedLogin(user.id, user.password_hash or "", now + self.LOGIN_CACHE_SECONDS)
        return self.store.principal(user)

    def authenticate_token(self, token: str) -> Principal | None:
        parts = split_token(token)
        if parts is None:
            return None
        found = self.store.token(parts[0])
        if found is None:
            return None
        user, stored = found
        if user.disabled or not token_matches(stored, parts[1]):
            return None
        return self.store.principal(user)


def published_at_init() -> list[dict[str, Any]]:
    """What every node publishes in its `reference` collection when it is created: the marking
    definitions readers need (TLP 2.0 and 1.0, Kuroshio's own) and the extension definitions of the
    maritime picture's object types."""
    from .maritime.intel import definitions as maritime_definitions

    return [*TLP_OBJECTS.values(), *kuroshio_objects(), *maritime_definitions()]


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _micros(text: str) -> int:
    return timestamps.to_micros(text) if text else 0


def _country(code: str | None) -> str | None:
    if code is None:
        return None
    if pycountry.countries.get(alpha_2=code.upper()) is None:
        raise NodeError(f"country '{code}' is not an ISO 3166 alpha-2 code (e.g. TW, JP)")
    return code.upper()


def _write_signing_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.with_suffix(".pub").write_bytes(pub)


__all__ = ["ConfigError", "Node", "NodeError", "identity_object"]
