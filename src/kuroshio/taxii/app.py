"""The TAXII 2.1 ASGI application: discovery, API roots, collections, objects, manifest, versions, status."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..node import Node
from ..principals import Principal, anonymous_principal
from ..stix import timestamps
from ..store import MEDIA_TYPE_STIX, Collection, Forbidden, NotFound, Page, Row, StatusRecord
from . import filters
from .errors import MEDIA_TYPE_TAXII, TaxiiError, bad_request, forbidden, not_found, unauthorized
from .negotiation import check_accept, check_content_type

log = logging.getLogger("kuroshio.taxii")

Handler = Callable[[Request, Principal], Response]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=MEDIA_TYPE_TAXII, headers=headers)


def _raw(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=MEDIA_TYPE_TAXII, headers=headers)


def _added_headers(page: Page) -> dict[str, str]:
    rows = page.rows
    if page.span is not None:
        first, last = page.span  # rows were left out for a partner node: it continues after all of them
    elif not rows:
        return {}
    else:
        first = min(r.date_added for r in rows)
        last = max(r.date_added for r in rows)
    return {"X-TAXII-Date-Added-First": timestamps.from_micros(first),
            "X-TAXII-Date-Added-Last": timestamps.from_micros(last)}


def _page_head(page: Page) -> list[bytes]:
    parts = [b'{"more":', b"true" if page.more else b"false"]
    cursor = page.next_cursor
    if cursor is not None:
        parts += [b',"next":"', filters.encode_next(cursor).encode(), b'"']
    return parts


def _version_text(row: Row) -> str:
    return row.version_text or timestamps.from_micros(row.date_added)


class TaxiiApp:
    """Binds a Node to the TAXII 2.1 HTTP interface."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self.config = node.config

    # -- plumbing --
    def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        principal = None
        if not header and any(c.public for c in self.store.collections()):
            return anonymous_principal()  # no credentials: what public collections hold for everyone
        if scheme == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise unauthorized() from None
            username, sep, password = decoded.partition(":")
            if sep and len(password) <= 1024:
                principal = self.node.authenticate_password(username, password)
        elif scheme in ("bearer", "token") and credentials:
            principal = self.node.authenticate_token(credentials)
        if principal is None:
            self.store.log_refusal(None, "authenticate", f"bad or missing credentials ({scheme or 'none'})")
            raise unauthorized()
        return principal

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                principal = await run_in_threadpool(self.authenticate, request)
                check_accept(request.headers.get("accept"))
                return await run_in_threadpool(handler, request, principal)
            except TaxiiError as err:
                return err.response()

        return run

    def _root(self, request: Request) -> str:
        root = request.path_params["root"]
        if self.config.api_root(root) is None:
            raise not_found("API root")
        return root

    def _collection(self, request: Request, principal: Principal, *, write: bool = False) -> Collection:
        root = self._root(request)
        coll = self.store.collection(root, request.path_params["cid"])
        access = self.store.access_of(principal, coll) if coll is not None else None
        if coll is None or (not principal.can_read(access) and not principal.can_write(access)):
            if principal.anonymous:
                raise unauthorized()  # the same for a collection that is not public and one that does not exist
            raise not_found("collection")
        if write and not principal.can_write(access):
            raise forbidden(f"{principal.username} may not add objects to collection '{coll.alias}'.")
        if not write and not principal.can_read(access):
            raise forbidden(f"{principal.username} may not read collection '{coll.alias}'.")
        return coll

    def _filter(self, request: Request, allowed: frozenset[str]) -> filters.ObjectFilter:
        return filters.parse(request.query_params, allowed, default_limit=self.config.page_size,
                             max_limit=self.config.max_page_size)

    # -- discovery and API roots --
    def discovery(self, request: Request, principal: Principal) -> Response:
        base = str(request.base_url)
        roots = [f"{base}{r.name}/" for r in self.config.api_roots]
        body: dict[str, Any] = {"title": self.config.title, "api_roots": roots, "default": roots[0]}
        if self.config.description:
            body["description"] = self.config.description
        if self.config.contact:
            body["contact"] = self.config.contact
        return _json(body)

    def api_root(self, request: Request, principal: Principal) -> Response:
        root = self.config.api_root(self._root(request))
        assert root is not None
        body = {"title": root.title, "versions": [MEDIA_TYPE_TAXII],
                "max_content_length": self.config.max_content_length}
        if root.description:
            body["description"] = root.description
        return _json(body)

    # -- collections --
    def _collection_resource(self, coll: Collection, principal: Principal) -> dict[str, Any] | None:
        access = self.store.access_of(principal, coll)
        can_read, can_write = principal.can_read(access), principal.can_write(access)
        if not (can_read or can_write):
            return None
        body: dict[str, Any] = {"id": coll.id, "title": coll.title, "alias": coll.alias, "can_read": can_read,
                                "can_write": can_write, "media_types": [MEDIA_TYPE_STIX]}
        if coll.description:
            body["description"] = coll.description
        return body

    def collections(self, request: Request, principal: Principal) -> Response:
        root = self._root(request)
        items = [c for c in (self._collection_resource(c, principal) for c in self.store.collections(root)) if c]
        return _json({"collections": items} if items else {})

    def collection(self, request: Request, principal: Principal) -> Response:
        coll = self._collection(request, principal)
        body = self._collection_resource(coll, principal)
        assert body is not None
        return _json(body)

    # -- objects --
    def get_objects(self, request: Request, principal: Principal) -> Response:
        coll = self._collection(request, principal)
        page = self.store.query(principal, coll, self._filter(request, filters.OBJECTS))
        return self._envelope(self.node.for_partner(principal, page))

    def _envelope(self, page: Page) -> Response:
        parts = _page_head(page)
        if page.rows:
            parts += [b',"objects":[', b",".join([r.raw for r in page.rows if r.raw is not None]), b"]"]
        parts.append(b"}")
        return _raw(b"".join(parts), headers=_added_headers(page))

    def get_object(self, request: Request, principal: Principal) -> Response:
        coll = self._collection(request, principal)
        flt = self._filter(request, filters.OBJECT)
        flt.ids = [request.path_params["oid"]]
        page = self.store.query(principal, coll, flt, way="object")
        if not page.rows and flt.cursor is None:
            raise not_found("object")
        return self._envelope(self.node.for_partner(principal, page))

    def delete_object(self, request: Request, principal: Principal) -> Response:
        coll = self._collection(request, principal, write=True)
        flt = self._filter(request, filters.DELETE)
        oid = request.path_params["oid"]
        try:
            deleted = self.store.delete(principal, coll, oid, flt)
        except Forbidden:
            raise forbidden(f"{principal.username} may not delete objects in collection '{coll.alias}'.") from None
        except NotFound:
            raise not_found("object") from None
        if not deleted:
            raise not_found("object")
        log.info("objects deleted collection=%s object=%s versions=%d user=%s", coll.alias, oid, deleted,
                 principal.username)
        return Response(b"", status_code=200, media_type=MEDIA_TYPE_TAXII)

    def versions(self, request: Request, principal: Principal) -> Response:
        coll = self._collection(request, principal)
        flt = self._filter(request, filters.VERSIONS)
        page = self.store.versions(principal, coll, request.path_params["oid"], flt)
        if not page.rows and flt.cursor is None:
            raise not_found("object")
        parts = _page_head(page)
        parts += [b',"versions":', orjson.dumps([_version_text(r) for r in page.rows]), b"}"]
        return _raw(b"".join(parts), headers=_added_headers(page))

    def manifest(self, request: Request, principal: Principal) -> Response:
        coll = self._collection(request, principal)
        page = self.store.query(principal, coll, self._filter(request, filters.MANIFEST), with_raw=False,
                                 way="manifest")
        parts = _page_head(page)
        if page.rows:
            records = [{"id": r.id, "date_added": timestamps.from_micros(r.date_added), "version": _version_text(r),
                        "media_type": MEDIA_TYPE_STIX} for r in page.rows]
            parts += [b',"objects":', orjson.dumps(records)]
        parts.append(b"}")
        return _raw(b"".join(parts), headers=_added_headers(page))

    async def add_objects(self, request: Request) -> Response:
        try:
            check_accept(request.headers.get("accept"))
            principal, coll = await run_in_threadpool(self._writer, request)
            check_content_type(request.headers.get("content-type"))
            body = await self._read_body(request)
            return await run_in_threadpool(self._store_envelope, principal, coll, body)
        except TaxiiError as err:
            return err.response()

    def _writer(self, request: Request) -> tuple[Principal, Collection]:
        principal = self.authenticate(request)
        return principal, self._collection(request, principal, write=True)

    def _store_envelope(self, principal: Principal, coll: Collection, body: bytes) -> Response:
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"The body is not valid JSON: {exc}.") from None
        if type(envelope) is not dict or type(envelope.get("objects", [])) is not list:
            raise bad_request("The body must be a TAXII envelope: a JSON object with an 'objects' list.")
        record = self.node.ingest(principal, coll, envelope.get("objects", []), body=body)
        log.info("envelope stored collection=%s user=%s total=%d success=%d failure=%d", coll.alias,
                 principal.username, record.total_count, record.success_count, record.failure_count)
        return _raw(_status_body(record), status=202)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_content_length
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise bad_request("Content-Length must be a number of bytes.")
            if int(declared) > limit:
                raise _too_large(int(declared), limit)
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    # -- status --
    def status(self, request: Request, principal: Principal) -> Response:
        root = self._root(request)
        record = self.store.status(principal, root, request.path_params["sid"])
        if record is None:
            raise not_found("status resource")
        return _raw(_status_body(record))


def _too_large(size: int, limit: int) -> TaxiiError:
    return TaxiiError(413, "Payload too large",
                      f"The request body has at least {size} bytes; this API root accepts at most {limit} "
                      "(max_content_length). Split the envelope into smaller ones.")


def _status_body(record: StatusRecord) -> bytes:
    """The TAXII status resource: counts, then the stored lists of successes, failures and pendings."""
    head = orjson.dumps({
        "id": record.id, "status": "complete" if record.pending_count == 0 else "pending",
        "request_timestamp": record.request_timestamp, "total_count": record.total_count,
        "success_count": record.success_count, "failure_count": record.failure_count,
        "pending_count": record.pending_count,
    })
    return head[:-1] + b"," + record.details[1:]


def create_app(node: Node) -> Starlette:
    taxii = TaxiiApp(node)
    ep = taxii.endpoint

    def both(path: str, endpoint: Any, methods: list[str]) -> list[Route]:
        return [Route(path + "/", endpoint, methods=methods), Route(path, endpoint, methods=methods)]

    routes = [
        *both("/taxii2", ep(taxii.discovery), ["GET"]),
        *both("/{root}", ep(taxii.api_root), ["GET"]),
        *both("/{root}/status/{sid}", ep(taxii.status), ["GET"]),
        *both("/{root}/collections", ep(taxii.collections), ["GET"]),
        *both("/{root}/collections/{cid}", ep(taxii.collection), ["GET"]),
        *both("/{root}/collections/{cid}/objects", ep(taxii.get_objects), ["GET"]),
        *both("/{root}/collections/{cid}/objects", taxii.add_objects, ["POST"]),
        *both("/{root}/collections/{cid}/objects/{oid}", ep(taxii.get_object), ["GET"]),
        *both("/{root}/collections/{cid}/objects/{oid}", ep(taxii.delete_object), ["DELETE"]),
        *both("/{root}/collections/{cid}/objects/{oid}/versions", ep(taxii.versions), ["GET"]),
        *both("/{root}/collections/{cid}/manifest", ep(taxii.manifest), ["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 405:
            return TaxiiError(405, "Method not allowed", f"{request.method} is not supported on {request.url.path}.",
                              headers={"Allow": (getattr(exc, "headers", None) or {}).get("Allow", "")}).response()
        if status == 404:
            return not_found().response()
        return TaxiiError(status, "Error", str(getattr(exc, "detail", ""))).response()

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return TaxiiError(500, "Internal server error", "The server failed; the error is logged.").response()

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.node = node
    return app
