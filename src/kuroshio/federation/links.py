"""Partner links: partner cards, adding, listing and removing partners, credentials and link health.

A node introduces itself to a partner with a **partner card** (`kuroshio partner card DIR`): its
organisation, STIX identity, TAXII discovery URL, community and public signing keys. The partner's
operator adds it (`kuroshio partner add DIR --card FILE`), which

- registers the organisation with the identity from the card, in the node's community (TLP:GREEN),
- pins its keys (signatures of what it sends are verified against them),
- grants it read and write on the exchanged collections,
- creates the service user `node:<ORG>` that the partner's node signs in as, and prints its token
  once (the partner stores it with `kuroshio partner credentials`),
- saves the link (URL, direction, collections, poll interval) in node.toml.

The bearer token this node uses at the partner is a secret: it lives in its own file, mode 0600.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .. import tls
from ..config import DIRECTIONS, KeyConfig, PartnerConfig
from ..node import Node, NodeError
from ..principals import PARTNER_NODE_PREFIX, Principal, Role, new_token
from ..stix import timestamps
from ..stix.signatures import public_from_text, public_text
from ..stix.validate import validate

CARD_FORMAT = "kuroshio-partner-card/1"
MAX_CARD_BYTES = 1 << 20


def discovery_url(node: Node) -> str:
    cfg = node.config
    scheme = "https" if cfg.tls_cert else "http"
    return f"{scheme}://{cfg.host}:{cfg.port}/taxii2/"


def card(node: Node, *, url: str | None = None) -> dict[str, Any]:
    """This node's partner card: what a partner needs to link to it and verify what it signs."""
    cfg = node.config
    home = node.store.organisation(cfg.org)
    if home is None:
        raise NodeError(f"the node's organisation {cfg.org} is missing from the store")
    keys = [{"public": public_text(node.signer.key.public_key()), "not_before": cfg.signing_key_since,
             "not_after": ""}]
    keys += [{"public": k.public, "not_before": k.not_before, "not_after": k.not_after} for k in cfg.retired_keys]
    out = {"format": CARD_FORMAT, "org": cfg.org, "name": cfg.org_name,
           "identity": orjson.loads(node.store.organisation_identity(home.id)),
           "url": url or discovery_url(node), "community": cfg.community, "keys": keys}
    ca = tls.ca_pem(cfg)
    if ca:
        out["tls_ca"] = ca  # to check this node's server certificate and accept its client certificate
    return out


@dataclass
class Card:
    org: str
    name: str
    identity: dict[str, Any]
    url: str
    keys: list[KeyConfig]
    tls_ca: str = ""


def read_card(path: Path) -> Card:
    """A partner card from a file, checked; NodeError says what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NodeError(f"cannot read the partner card {path}: {exc.strerror}") from None
    if len(raw) > MAX_CARD_BYTES:
        raise NodeError(f"{path} is larger than a partner card can be ({MAX_CARD_BYTES} bytes)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NodeError(f"{path} is not JSON ({exc}): pass the file `kuroshio partner card` wrote") from None
    return parse_card(data, str(path))


def parse_card(data: Any, path: str) -> Card:
    """A partner card as card() writes it, checked; `path` names where it came from in errors."""
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        raise NodeError(f"{path} is not a Kuroshio partner card (expected \"format\": \"{CARD_FORMAT}\")")
    org, identity, keys = data.get("org"), data.get("identity"), data.get("keys")
    if not isinstance(org, str) or not org.replace("-", "").replace("_", "").isalnum():
        raise NodeError(f"{path}: 'org' must be a short organisation name such as JPN")
    if not isinstance(identity, dict) or identity.get("type") != "identity":
        raise NodeError(f"{path}: 'identity' must be the partner's STIX identity object")
    problem = validate(identity, allow_custom=True)
    if problem is not None:
        raise NodeError(f"{path}: the partner's identity is not valid STIX: {problem}")
    if not isinstance(keys, list) or not keys:
        raise NodeError(f"{path}: 'keys' must list the partner's public signing keys")
    pinned = []
    for i, k in enumerate(keys):
        if not isinstance(k, dict) or not isinstance(k.get("public"), str):
            raise NodeError(f"{path}: keys[{i}] needs 'public' (base64url of an Ed25519 public key)")
        try:
            public_from_text(k["public"])
        except ValueError as exc:
            raise NodeError(f"{path}: keys[{i}]: {exc}") from None
        for bound in ("not_before", "not_after"):
            value = k.get(bound) or ""
            if value and timestamps.check(value) is not None:
                raise NodeError(f"{path}: keys[{i}].{bound} is not a STIX timestamp")
        pinned.append(KeyConfig(k["public"], k.get("not_before") or "", k.get("not_after") or ""))
    url = data.get("url") or ""
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise NodeError(f"{path}: 'url' must be the partner's TAXII discovery URL (http:// or https://)")
    tls_ca = data.get("tls_ca") or ""
    if not isinstance(tls_ca, str) or (tls_ca and "BEGIN CERTIFICATE" not in tls_ca):
        raise NodeError(f"{path}: 'tls_ca' must be the partner's CA certificate in PEM")
    return Card(org, str(data.get("name") or org), identity, url, pinned, tls_ca)


def service_username(org: str) -> str:
    return f"{PARTNER_NODE_PREFIX}{org}"


def partner_principal(node: Node, org: str) -> Principal:
    """The principal a partner's node acts as here: what it may read, and in whose name it writes."""
    user = node.store.user(service_username(org))
    if user is None or user.disabled:
        raise NodeError(f"partner {org} has no active service user here: run `kuroshio partner add` again")
    return node.store.principal(user)


def add_partner(node: Node, partner_card: Card, *, direction: str = "both", collections: list[str] | None = None,
                url: str | None = None, token: str | None = None, poll_interval: float = 5.0,
                ca_file: str = "", client_cert: str = "", client_key: str = "") -> str:
    """Link a partner (or update its link); returns the token its node signs in with here (shown once)."""
    cfg = node.config
    if direction not in DIRECTIONS:
        raise NodeError(f"direction '{direction}' must be one of {', '.join(DIRECTIONS)}")
    if partner_card.org == cfg.org or partner_card.identity["id"] == cfg.identity:
        raise NodeError("a node cannot be its own partner")
    aliases = collections or ["shared"]
    colls = [node.collection(cfg.default_api_root, a) for a in aliases]
    store = node.store
    org = store.organisation(partner_card.org)
    if org is None:
        org = store.add_organisation(partner_card.org, partner_card.identity, community=cfg.community)
    elif org.identity_id != partner_card.identity["id"]:
        raise NodeError(f"organisation {partner_card.org} is already known here with identity {org.identity_id}, "
                        f"not {partner_card.identity['id']}: check the card, or use another name")
    elif org.community != cfg.community:
        node.set_organisation(partner_card.org, partner=True)
    for coll in colls:
        store.grant(coll.id, org.id, can_read=True, can_write=True)
    username = service_username(partner_card.org)
    user = store.user(username)
    if user is None:
        user = store.add_user(username, org.id, Role.CONTRIBUTOR, None)
    elif user.disabled:
        store.set_user_disabled(username, False)
    shown, token_id, secret_hash = new_token()
    store.add_token(user.id, token_id, secret_hash, f"partner node {partner_card.org}")
    if partner_card.tls_ca and not ca_file:
        try:
            ca_file = tls.trust_partner_ca(cfg, partner_card.org, partner_card.tls_ca)
        except ValueError as exc:
            raise NodeError(f"the partner card's tls_ca is not a certificate: {exc}") from None
    if not client_cert:
        client_cert, client_key = tls.client_pair(cfg)
    link = PartnerConfig(org=partner_card.org, identity=partner_card.identity["id"],
                         url=partner_card.url if url is None else url, direction=direction, collections=aliases,
                         community=cfg.community, poll_interval=poll_interval, keys=partner_card.keys,
                         ca_file=ca_file, client_cert=client_cert, client_key=client_key)
    previous = cfg.partner(partner_card.org)
    if previous is not None:
        link.token_file = previous.token_file
        cfg.partners.remove(previous)
    cfg.partners.append(link)
    if token:
        _write_token(node, link, token)
    cfg.save()
    node.reload_keys()
    return shown


def set_credentials(node: Node, org: str, token: str) -> None:
    link = node.config.partner(org)
    if link is None:
        raise NodeError(f"no partner '{org}' on this node: add it first with `kuroshio partner add`")
    _write_token(node, link, token)
    node.config.save()


def _write_token(node: Node, link: PartnerConfig, token: str) -> None:
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise NodeError("the partner's token must be one word, as its operator's `kuroshio partner add` printed it")
    rel = f"keys/partners/{link.org}.token"
    path = node.config.path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    link.token_file = rel


def token_of(node: Node, link: PartnerConfig) -> str | None:
    if not link.token_file:
        return None
    try:
        return node.config.path(link.token_file).read_text().strip() or None
    except OSError:
        return None


def remove_partner(node: Node, org: str) -> None:
    """Unlink a partner: stop syncing and revoke its node's sign-in. Its organisation, pinned keys and the
    objects it sent stay (they are still verifiable); `kuroshio org set` changes its community."""
    cfg = node.config
    link = cfg.partner(org)
    if link is None:
        raise NodeError(f"no partner '{org}' on this node (partners: {', '.join(p.org for p in cfg.partners) or 'none'})")
    node.store.set_user_disabled(service_username(org))
    link.url = ""
    link.direction = "none"
    if link.token_file:
        node.config.path(link.token_file).unlink(missing_ok=True)
        link.token_file = ""
    cfg.save()


def health_key(org: str) -> str:
    return f"health:{org}"


def checkpoint_key(org: str, alias: str) -> str:
    return f"pull:{org}:{alias}"


def status(node: Node) -> list[dict[str, Any]]:
    """Per partner: link settings and health (last success, lag, backlog, errors, rejected objects)."""
    out = []
    for link in node.config.partners:
        raw = node.store.sync_state(health_key(link.org))
        health = orjson.loads(raw) if raw else {}
        out.append({"org": link.org, "url": link.url, "direction": link.direction, "collections": link.collections,
                    "keys": len(link.keys), "credentials": bool(token_of(node, link)), **health})
    return out
