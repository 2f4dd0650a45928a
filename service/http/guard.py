"""Refuses requests a web page could make on a user's behalf, before any route runs.

A service open on 127.0.0.1 is reachable by every page the user's browser opens, two ways:

- **DNS rebinding**: a page on ``evil.example`` re-resolves its own name to 127.0.0.1 and
  then reads and writes the API as a same-origin page. Its requests carry
  ``Host: evil.example``, so the ``Host`` header is checked against an allow-list (400):
  the loopback names, the bound address, any IP literal when bound to every interface (an
  IP literal cannot be rebound), and ``REGFIT_ALLOWED_HOSTS``.
- **Cross-site requests**: any page can send a "simple" POST (form-encoded, ``text/plain``
  or multipart body) without a CORS preflight. A state-changing request (POST, PUT, PATCH,
  DELETE) whose ``Origin`` is not the service's own, or, without ``Origin``, whose
  ``Sec-Fetch-Site`` is ``cross-site``, is refused (403) unless the origin is in
  ``REGFIT_ALLOWED_ORIGINS``. Clients that are not browsers (curl, SDKs) send neither.

And since a page cannot send ``content-type: application/json`` cross-site without a
preflight, routes read JSON only when it is declared so: a body sent as form-encoded,
``text/plain`` or without a content type is a 415 naming the types the route takes (the
hint for ``curl -d`` is ``-H 'content-type: application/json'``).

A NUL character in the path or the query string is refused here too (404 / 422) for
every route: PostgreSQL cannot take one in a text parameter.

One pure ASGI middleware: the prediction hot path pays a scan of its few headers and the
route table's cached lookup.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.types import ASGIApp, Receive, Scope, Send

from service import errors
from service.config import Settings
from service.http.responses import problem_response
from service.observability import RouteTable, route_table

STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS: Final = frozenset({"0.0.0.0", "::", ""})
JSON: Final = "application/json"
# A route whose OpenAPI extra sets this takes a body without a content type too: the Open
# Inference Protocol's clients (tritonclient) send none. A cross-site page's POST still meets
# the Origin check first.
UNTYPED_BODY: Final = "x-regfit-untyped-body"
# Content types every browser page may send cross-site without a preflight; a JSON route
# given one of them (or none) answers 415 instead of guessing.
_NOT_JSON: Final = ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data")


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (the comma-separated settings)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (no port, no brackets), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` headers and cross-site origins this service answers."""

    def __init__(self, settings: Settings) -> None:
        configured = [h.lower() for h in split_list(settings.allowed_hosts)]
        self.any_host = "*" in configured
        bound = settings.host.strip("[]").lower()
        self.any_ip = bound in WILDCARD_BINDS
        self.hosts = LOOPBACK_NAMES | {bound} | {h for h in configured if not h.startswith("*.")}
        self.suffixes = tuple(h[1:] for h in configured if h.startswith("*."))
        origins = split_list(settings.allowed_origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)

    def host_allowed(self, host: str) -> bool:
        if self.any_host or host in self.hosts or host.endswith(".localhost"):
            return True
        if self.suffixes and host.endswith(self.suffixes):
            return True
        return self.any_ip and _is_ip_literal(host)

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in (f"http://{host_header}", f"https://{host_header}"):
            return True  # the service's own pages (e.g. /docs)
        return self.any_origin or origin in self.origins


def _body_media_types(route: APIRoute) -> frozenset[str] | None:
    """The content types a route's body may have; ``None`` when the route checks itself."""
    extra = (route.openapi_extra or {}).get("requestBody", {}).get("content")
    if extra:
        media = frozenset(extra) | (
            {""} if (route.openapi_extra or {}).get(UNTYPED_BODY) else set()
        )
        # Routes that take files read their own type (and answer 415 themselves).
        return None if "multipart/form-data" in media else media
    if route.body_field is not None:
        return frozenset({JSON})
    return None


def _nul_refusal(scope: Scope) -> errors.RegfitError | None:
    """A NUL character in the path (404) or the query (422), refused for every route at once.

    No id or name holds one, and PostgreSQL cannot even compare a text with one (the driver
    raises), so it is answered here instead of by each route.
    """
    if "\x00" in scope["path"]:
        return errors.NotFound(
            "nothing is found at a path holding a NUL character (%00)",
            errors=[errors.field_error("path:/", "NUL character")],
        )
    query: bytes = scope["query_string"]
    if _has_nul(query):
        names = [
            part.split(b"=", 1)[0].decode("latin-1")
            for part in query.split(b"&")
            if b"%00" in part or b"\x00" in part
        ]
        return errors.InvalidInput(
            f"query parameter {names[0]!r} holds a NUL character (%00)",
            errors=[errors.field_error(f"query:/{name}", "NUL character") for name in names],
        )
    return None


class RequestGuard:
    """The ``Host`` allow-list (400), the cross-site check (403), JSON content types (415)."""

    # Verdicts are cached by the raw header values a client sent; bounded, as clients choose.
    CACHE_SIZE = 1024

    def __init__(self, app: ASGIApp, *, policy: HostPolicy, routes: RouteTable) -> None:
        self.app = app
        self.policy = policy
        self.routes = routes
        self._media: dict[tuple[str, str], frozenset[str] | None] = {}
        self._hosts: dict[bytes | None, bool] = {}
        self._content: dict[tuple[str, str, bytes | None], errors.RegfitError | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = fetch_site = content_type = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                has_body = value.strip() not in (b"0", b"")
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                fetch_site = value
            elif name == b"transfer-encoding":
                has_body = True
        refusal: errors.RegfitError | None = None
        if not self._host_allowed(host):
            refusal = errors.RegfitError(
                f"host {_text(host)!r} is not served here; list it in REGFIT_ALLOWED_HOSTS "
                "to serve it (a guard against DNS rebinding)",
                errors=[errors.field_error("header:/host", "not an allowed host")],
            )
        elif scope["method"] in STATE_CHANGING:
            refusal = self._cross_site(scope["method"], host, origin, fetch_site)
            if refusal is None and has_body and scope["method"] != "DELETE":
                refusal = self._content_refusal(scope, content_type)
        if refusal is None and ("\x00" in scope["path"] or _has_nul(scope["query_string"])):
            refusal = _nul_refusal(scope)
        if refusal is not None:
            await problem_response(refusal.problem())(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _host_allowed(self, host: bytes | None) -> bool:
        try:
            return self._hosts[host]
        except KeyError:
            pass
        allowed = self.policy.any_host or (
            host is not None and self.policy.host_allowed(host_of(_text(host)))
        )
        if len(self._hosts) >= self.CACHE_SIZE:
            self._hosts.clear()
        self._hosts[host] = allowed
        return allowed

    def _cross_site(
        self, method: str, host: bytes | None, origin: bytes | None, fetch_site: bytes | None
    ) -> errors.RegfitError | None:
        policy = self.policy
        if origin is not None:
            if policy.origin_allowed(_text(origin), _text(host).strip().lower()):
                return None
            return errors.Forbidden(
                f"cross-origin {method} from {_text(origin)!r} refused; list the origin in "
                "REGFIT_ALLOWED_ORIGINS to allow it",
                errors=[errors.field_error("header:/origin", "origin not allowed")],
            )
        if fetch_site is not None and fetch_site.lower() == b"cross-site" and not policy.any_origin:
            return errors.Forbidden(
                f"cross-site {method} refused (Sec-Fetch-Site: cross-site, no Origin)",
                errors=[errors.field_error("header:/sec-fetch-site", "cross-site request")],
            )
        return None

    def _content_refusal(
        self, scope: Scope, content_type: bytes | None
    ) -> errors.RegfitError | None:
        entry = self.routes.resolve(scope)
        if entry is None:
            return None  # a 404/405 follows
        key = (scope["method"], entry.template, content_type)
        try:
            return self._content[key]
        except KeyError:
            pass
        refusal = _media_refusal(self._accepted(scope["method"], entry.template), content_type)
        if len(self._content) >= self.CACHE_SIZE:
            self._content.clear()
        self._content[key] = refusal
        return refusal

    def _accepted(self, method: str, template: str) -> frozenset[str] | None:
        key = (method, template)
        try:
            return self._media[key]
        except KeyError:
            pass
        found: frozenset[str] | None = None
        for context in iter_route_contexts(self.routes.app.routes):
            route = context.original_route
            if (
                isinstance(route, APIRoute)
                and context.path_format == template
                and method in (route.methods or ())
            ):
                found = _body_media_types(route)
                break
        self._media[key] = found
        return found


def _text(value: bytes | None) -> str:
    return value.decode("latin-1") if value is not None else ""


def _has_nul(query: bytes) -> bool:
    return b"%00" in query or b"\x00" in query


def _media_refusal(
    accepted: frozenset[str] | None, content_type: bytes | None
) -> errors.RegfitError | None:
    """The 415 for a body of ``content_type`` to a route taking ``accepted``, or None."""
    if accepted is None:
        return None  # the route checks its own types
    media = _text(content_type).split(";", 1)[0].strip().lower()
    if media in accepted or (JSON in accepted and media.endswith("+json")):
        return None
    if media and not media.startswith(_NOT_JSON) and JSON not in accepted:
        return None  # the route answers an unknown type itself
    hint = (
        "; send the JSON body with 'content-type: application/json' "
        "(curl: -H 'content-type: application/json')"
        if JSON in accepted
        else ""
    )
    return errors.UnsupportedMediaType(
        f"content type {media or 'none'!r} is not accepted here; the body must be "
        f"{' or '.join(sorted(accepted - {''}))}{hint}",
        errors=[errors.field_error("header:/content-type", "unsupported content type")],
        accepted=sorted(accepted - {""}),
    )


def install(app: FastAPI, settings: Settings) -> None:
    """Add the request guard to ``app`` (call it before the observability middleware)."""
    app.add_middleware(RequestGuard, policy=HostPolicy(settings), routes=route_table(app))
