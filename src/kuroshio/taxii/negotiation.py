"""TAXII 2.1 content negotiation: Accept (406) and Content-Type (415) on application/taxii+json;version=2.1."""

from __future__ import annotations

from .errors import MEDIA_TYPE_TAXII, TaxiiError


def _parse(media: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in media.split(";")]
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].lower(), params


def _acceptable(media: str) -> bool:
    mtype, params = _parse(media)
    if params.get("q") in ("0", "0.0", "0.00", "0.000"):
        return False
    if mtype in ("*/*", "application/*"):
        return True
    if mtype == "application/taxii+json":
        return params.get("version", "2.1") == "2.1"
    return False


def check_accept(accept: str | None) -> None:
    """Raise 406 unless the client accepts TAXII 2.1 JSON (a missing Accept header accepts anything)."""
    if not accept:
        return
    if not any(_acceptable(m) for m in accept.split(",") if m.strip()):
        raise TaxiiError(406, "Not acceptable",
                         f"This server answers with {MEDIA_TYPE_TAXII}; the request accepts only: {accept[:200]}")


def check_content_type(content_type: str | None) -> None:
    """Raise 415 unless the request body is TAXII 2.1 JSON."""
    if content_type:
        mtype, params = _parse(content_type)
        if mtype == "application/taxii+json" and params.get("version", "2.1") == "2.1":
            return
    raise TaxiiError(415, "Unsupported media type",
                     f"Send the envelope as Content-Type: {MEDIA_TYPE_TAXII} (got: {(content_type or 'none')[:200]})")
