"""TAXII 2.1 error message resources (section 3.6.1) and the exception that carries them."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

MEDIA_TYPE_TAXII = "application/taxii+json;version=2.1"


class TaxiiError(Exception):
    """An error answered with a TAXII error message resource."""

    def __init__(self, status: int, title: str, description: str = "", *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description
        self.details = details
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {"title": self.title, "http_status": str(self.status)}
        if self.description:
            body["description"] = self.description
        if self.details:
            body["details"] = self.details
        return Response(orjson.dumps(body), status_code=self.status, media_type=MEDIA_TYPE_TAXII,
                        headers=self.headers)


def bad_request(description: str, **details: Any) -> TaxiiError:
    return TaxiiError(400, "Bad request", description, details=details or None)


def not_found(what: str = "resource") -> TaxiiError:
    # one wording for "does not exist" and "you may not see it": the two must be indistinguishable
    return TaxiiError(404, "Not found", f"The requested {what} does not exist.")


def unauthorized() -> TaxiiError:
    return TaxiiError(
        401, "Authentication required",
        "Send HTTP Basic credentials or an API token (Authorization: Bearer <token>).",
        headers={"WWW-Authenticate": 'Basic realm="kuroshio", charset="UTF-8", Bearer realm="kuroshio"'},
    )


def forbidden(description: str) -> TaxiiError:
    return TaxiiError(403, "Forbidden", description)
