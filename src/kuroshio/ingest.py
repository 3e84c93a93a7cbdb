"""The one way in for objects: validate an envelope, stamp its origin, canonicalise, and store it.

Every input (TAXII POST, `kuroshio import`, derived intelligence later) goes through `ingest()`,
so validation, provenance rules and storage are the same whatever the door (DESIGN.md data flow).
Large envelopes are validated in parallel by worker processes (`Preparer`) on machines with four
or more cores; the store writes each envelope in one transaction.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import orjson

from .markings import audience as aud
from .markings.definitions import PREDEFINED_OBJECTS, MarkingError, interpret
from .markings.policy import MarkingRefused, Policy
from .principals import Principal
from .stix import timestamps
from .stix.canonical import CanonicalError, canonical
from .stix.signatures import SignatureError, Signer, Verifier
from .stix.validate import SPECS, validate
from .store import Collection, Outcome, PreparedObject, StatusRecord, Store
from .store.base import id_hash

log = logging.getLogger("kuroshio.ingest")

# Object kinds that carry created_by_ref and are stamped with the publisher's organisation.
_STAMPED_KINDS = frozenset({"sdo", "sro", "language-content", "extension-definition"})
PARALLEL_MIN_OBJECTS = 200  # below this, the round trip to a worker costs more than it saves


@dataclass(frozen=True, slots=True)
class Provenance:
    """How the origin of an envelope's objects is proven (DESIGN.md invariant 4).

    From the node's own users: `signer` signs every object the home organisation originates.
    From a partner node: `verifier` checks every object's signature; the signer must be the
    organisation its `created_by_ref` names, and is the origin of content authored outside the
    federation. Without either (tests of the store, scratch stores) objects are stored as given.
    """

    signer: Signer | None = None
    verifier: Verifier | None = None
    home_org: int | None = None  # with a verifier: objects the home organisation may not see are refused
    home_identity: str = ""  # with a verifier: objects this node signed itself are already here, as originated


NO_PROVENANCE = Provenance()


def _prepare_objects(objects: Iterable[Any], allow_custom: bool, own: str, known: frozenset[str],
                     policy: Policy, provenance: Provenance = NO_PROVENANCE
                     ) -> tuple[list[PreparedObject], list[Outcome]]:
    ok: list[PreparedObject] = []
    failures: list[Outcome] = []
    signer, verifier = provenance.signer, provenance.verifier
    to_sign: list[tuple[int, dict[str, Any], bytes]] = []  # (index in ok, unsigned object, leaf message)
    by_identity = policy.directory.by_identity
    for obj in objects:
        problem = validate(obj, allow_custom=allow_custom)
        if problem is not None:
            failures.append(_failure(obj, str(problem)))
            continue
        t = obj["type"]
        creator = obj.get("created_by_ref")
        submitter: int | None = None
        verified_raw: bytes | None = None  # the canonical form the signature check produced, when it did
        if verifier is not None:
            proven = _partner_origin(obj, verifier, provenance, by_identity)
            if isinstance(proven, Outcome):
                failures.append(proven)
                continue
            submitter, verified_raw = proven
            foreign = False
        else:
            spec = SPECS.get(t)
            kind = spec.kind if spec is not None else ("sdo" if "created" in obj else "sco")
            if creator is None and kind in _STAMPED_KINDS and obj["id"] not in PREDEFINED_OBJECTS:
                obj = {**obj, "created_by_ref": own}
                creator = own
            # a version in another known organisation's name: the store accepts it only as a marking-only
            # tightening of an object that organisation published (rule: impersonation)
            foreign = creator is not None and creator != own and creator in known
        marked_in = obj
        try:
            marked = policy.mark(obj, submitter)
        except MarkingRefused as exc:
            failures.append(_failure(obj, f"{obj['id']}: {exc.detail} [rule: {exc.rule}]"))
            continue
        obj = marked.obj
        if signer is not None and marked.origin == policy.submitter_org and obj["id"] not in PREDEFINED_OBJECTS:
            # the home organisation originates it: it leaves the node signed, in batches (one signature
            # per batch root, a Merkle proof per object: stix/signatures.py) once the envelope is prepared
            try:
                obj, message = signer.unsigned(obj)
            except CanonicalError as exc:
                failures.append(_failure(obj, f"{obj['id']}: cannot be serialised canonically: {exc} [rule: json]"))
                continue
            to_sign.append((len(ok), obj, message))
            raw = b""
        elif verifier is not None and not marked.own & aud.reader_keys(provenance.home_org, policy.directory):
            # the sender should not have sent it: its originator's markings do not reach this node
            failures.append(_failure(obj, f"{obj['id']}: its markings do not release it to this node's organisation; "
                                          "the sending node should not have sent it [rule: not-releasable-here]"))
            continue
        else:
            try:
                raw = verified_raw if verified_raw is not None and obj is marked_in else canonical(obj)
            except CanonicalError as exc:
                failures.append(_failure(obj, f"{obj['id']}: cannot be serialised canonically: {exc} [rule: json]"))
                continue
        stated = obj.get("modified") or obj.get("created")
        ok.append(PreparedObject(
            id=obj["id"],
            idh=id_hash(obj["id"]),
            type=t,
            version=timestamps.key(stated) if stated else "",
            version_text=stated or "",
            spec_version=obj.get("spec_version", "2.1"),
            created_by=creator,
            raw=raw,
            origin=marked.origin,
            own=marked.own,
            granular=marked.granular,
            ends=marked.ends,
            members=marked.members,
            member_parts=marked.member_parts,
            shape=marked.shape,
            foreign=foreign,
        ))
    if to_sign:
        assert signer is not None
        signed = signer.sign_batch([m for _, _, m in to_sign])
        for (i, unsigned, message), (proof, signature) in zip(to_sign, signed, strict=True):
            ok[i] = ok[i]._replace(raw=signer.signed_raw(unsigned, message, proof, signature))
    return ok, failures


def _partner_origin(obj: dict[str, Any], verifier: Verifier, provenance: Provenance,
                    by_identity: dict[str, int]) -> tuple[int, bytes | None] | Outcome:
    """For an object a partner's node sent: the organisation that vouches for it (its verified signer) and
    the canonical form the check produced; or the outcome that ends its way in here."""
    if obj["id"] in PREDEFINED_OBJECTS:
        # the definitions every node holds: compared with ours, never stored from a partner
        same = canonical(obj) == PREDEFINED_OBJECTS[obj["id"]]
        return _failure(obj, "" if same else f"{obj['id']}: differs from the predefined object with this id "
                                             "[rule: predefined]", ok=same)
    try:
        signed_by, verified_raw = verifier.verify_canonical(obj)
    except SignatureError as exc:
        return _failure(obj, f"{obj['id']}: {exc.detail} [rule: {exc.rule}]")
    if signed_by == provenance.home_identity:
        # our own object, back from a partner (as that partner may see it): the original is here
        return _failure(obj, "", ok=True)
    creator = obj.get("created_by_ref")
    if creator is not None and creator in by_identity and creator != signed_by:
        return _failure(obj, f"{obj['id']}: created_by_ref names {creator} but the object is signed by {signed_by}: "
                             "only an organisation's own key vouches for its objects [rule: provenance]")
    submitter = by_identity.get(signed_by)
    if submitter is None:
        return _failure(obj, f"{obj['id']}: its signer {signed_by} is not an organisation this node knows "
                             "[rule: provenance]")
    return submitter, verified_raw


def _prepare_slice(body: bytes, start: int, stop: int, allow_custom: bool, own: str, known: frozenset[str],
                   policy: Policy, provenance: Provenance) -> tuple[list[PreparedObject], list[Outcome]]:
    """Worker process: prepare objects[start:stop] of a serialised envelope."""
    objects = orjson.loads(body)["objects"]
    return _prepare_objects(objects[start:stop], allow_custom, own, known, policy, provenance)


_MEANINGS: dict[bytes, Any] = {}  # a marking definition's canonical JSON -> its meaning (content-addressed)


def _registry(store: Store) -> dict[str, Any]:
    """The marking definitions the store holds, interpreted (each distinct definition once)."""
    registry: dict[str, Any] = {}
    for mid, body in store.marking_registry().items():
        meaning = _MEANINGS.get(body, _MISSING)
        if meaning is _MISSING:
            try:
                meaning = interpret(orjson.loads(body))
            except (MarkingError, KeyError, TypeError, AttributeError, ValueError):
                meaning = None
            if len(_MEANINGS) > 100_000:
                _MEANINGS.clear()
            _MEANINGS[body] = meaning
        registry[mid] = meaning
    return registry


_MISSING = object()


def policy_for(store: Store, principal: Principal, collection: Collection, objects: Sequence[Any]) -> Policy:
    """The marking policy for one envelope: the node's marking definitions, its organisations, the
    collection's default marking, and the marking definitions the envelope itself brings (valid ones)."""
    registry = _registry(store)
    policy = Policy(registry, store.directory(), collection.default_marking, collection.exercise, principal.org.id)
    policy.learn([o for o in objects if isinstance(o, dict) and o.get("type") == "marking-definition"
                  and validate(o, allow_custom=collection.allow_custom) is None])
    return policy


def _failure(obj: Any, message: str, *, ok: bool = False) -> Outcome:
    oid = obj.get("id") if isinstance(obj, dict) else None
    version = (obj.get("modified") or obj.get("created") or "") if isinstance(obj, dict) else ""
    return Outcome(oid if isinstance(oid, str) else "", version if isinstance(version, str) else "", ok, message)


def default_workers() -> int:
    """Worker processes for large envelopes: none on small machines, where the round trips to the
    workers cost more than they save (measured on 2 vCPUs), half the cores (up to 8) from 4 cores up."""
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(cores // 2, 8)


class Preparer:
    """Prepares envelopes, splitting large ones across worker processes when there are cores to use."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["kuroshio.ingest"])
                self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_watch_server,
                                                 initargs=(os.getpid(),))
            return self._pool

    def parts(self, principal: Principal, collection: Collection, objects: Sequence[Any], policy: Policy,
              body: bytes | None = None, provenance: Provenance = NO_PROVENANCE
              ) -> Iterator[tuple[list[PreparedObject], list[Outcome]]]:
        """Prepared (objects, failures) parts of an envelope, in envelope order.

        Large envelopes are split across the worker processes; the parts are yielded as soon as
        each is ready, so the store writes the first while the workers still validate the rest.
        """
        n = len(objects)
        if self.workers < 2 or n < PARALLEL_MIN_OBJECTS:
            yield _prepare_objects(objects, collection.allow_custom, principal.org.identity_id,
                                   principal.known_identities, policy, provenance)
            return
        if body is None:
            body = orjson.dumps({"objects": objects})
        args = (collection.allow_custom, principal.org.identity_id, principal.known_identities, policy, provenance)
        slices = self.workers * 2  # more slices than workers: the first part reaches the store sooner
        step = max(-(-n // slices), PARALLEL_MIN_OBJECTS // 2)
        try:
            pool = self._get_pool()
            futures = [pool.submit(_prepare_slice, body, a, min(a + step, n), *args) for a in range(0, n, step)]
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            self._unavailable(exc)
            yield _prepare_objects(objects, *args)
            return
        for i, future in enumerate(futures):
            try:
                yield future.result()
            except (BrokenProcessPool, OSError) as exc:
                self._unavailable(exc)
                for a in range(i * step, n, step):
                    yield _prepare_objects(objects[a:a + step], *args)
                return

    def _unavailable(self, exc: BaseException) -> None:
        log.warning("ingest workers unavailable (%s): validating in the server process", exc)
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _watch_server(pid: int) -> None:
    """Worker process start: end this worker when the process that started the pool ends, however it ends
    (a worker holds the ends of its own queues, so it would otherwise wait for work forever)."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux 5.3+: look once a second
            while True:
                time.sleep(1.0)
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
        else:
            select.select([fd], [], [])  # readable once the process has ended
        os._exit(0)

    threading.Thread(target=watch, name="kuroshio-server-watch", daemon=True).start()


_INLINE = Preparer(workers=0)


def ingest(store: Store, principal: Principal, collection: Collection, objects: Sequence[Any], *,
           status_id: str | None = None, preparer: Preparer | None = None, body: bytes | None = None,
           provenance: Provenance = NO_PROVENANCE, checkpoint: tuple[str, str] | None = None) -> StatusRecord:
    """Validate, stamp, sign or verify, and store one envelope in one transaction; returns its TAXII status
    resource. `checkpoint` (key, value) is made durable in the same transaction (partner sync)."""
    policy = policy_for(store, principal, collection, objects)
    parts = (preparer or _INLINE).parts(principal, collection, objects, policy, body, provenance)
    return store.add_objects(principal, collection, parts, status_id=status_id, checkpoint=checkpoint)
