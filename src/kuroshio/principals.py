"""Organisations, users, roles, password and API-token secrets, and the Principal every read takes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import IntEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("reader", "contributor", "admin")
# A partner's node signs in to this node as the service user "node:<ORG>" of the partner organisation
# (federation/links.py creates it; ':' is not allowed in the names of other users). What it sends must
# carry its originators' signatures; what it reads is what its organisation may see.
PARTNER_NODE_PREFIX = "node:"


class Role(IntEnum):
    READER = 1
    CONTRIBUTOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role '{name}': use one of {', '.join(ROLES)}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    identity_id: str  # the organisation's STIX identity object id
    home: bool  # the organisation that runs this node
    community: str | None = None  # the sharing community it belongs to (TLP:GREEN)
    client_of: int | None = None  # the organisation it is a client of (TLP:AMBER)
    country: str | None = None  # ISO 3166 alpha-2


ANONYMOUS_ORG = Organisation(0, "anonymous", "", False)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    org_id: int
    role: Role
    password_hash: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class Access:
    """What one organisation may do in one collection."""

    can_read: bool
    can_write: bool


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the authenticated user, their organisation and role.

    Every read of objects in the store takes a Principal; there is no read path without one.
    """

    user_id: int
    username: str
    org: Organisation
    role: Role
    # organisations this node knows, by identity id (used to refuse impersonation)
    known_identities: frozenset[str] = field(default=frozenset())
    # the audience keys this reader holds (markings/audience.py): what it may see
    keys: frozenset[str] = field(default=frozenset())

    @property
    def anonymous(self) -> bool:
        return self.org.id == 0

    def can_read(self, access: Access | None) -> bool:
        return access is not None and access.can_read

    def can_write(self, access: Access | None) -> bool:
        return (access is not None and access.can_write and self.role >= Role.CONTRIBUTOR
                and not self.anonymous)

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN


def anonymous_principal() -> Principal:
    """An unauthenticated reader: it may read public collections, and there only what everyone may see."""
    return Principal(0, "anonymous", ANONYMOUS_ORG, Role.READER, frozenset(), frozenset({"*"}))


# --- secrets -------------------------------------------------------------------------------------

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password is empty")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        burn_password_check(password)  # users without a password look like wrong passwords, timing included
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    """Spend the time of one password verification (for unknown users: no user enumeration by timing)."""
    try:
        _hasher.verify(_DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        pass


TOKEN_PREFIX = "ksh"


def new_token() -> tuple[str, str, str]:
    """Return (token shown once to the user, token id, secret hash stored at rest)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}_{token_id}_{secret}", token_id, token_secret_hash(secret)


def split_token(token: str) -> tuple[str, str] | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 16:
        return None
    return parts[1], parts[2]


def token_secret_hash(secret: str) -> str:
    # API tokens carry 256 bits of entropy, so a single SHA-256 is a sufficient hash at rest.
    return hashlib.sha256(secret.encode()).hexdigest()


def token_matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, token_secret_hash(secret))
