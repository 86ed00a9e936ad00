"""Checks every request passes before its handler runs: who it is for, and what it carries.

- **Host**: only the names in ``--allowed-host`` (default: the loopback names). A page on
  another site that resolves its own name to 127.0.0.1 (DNS rebinding) sends its own name
  as Host and gets a 400, so it cannot read or drive the trader's local server.
- **Content-Type** on every POST: ``application/json``, else 415. A web page can send a
  ``text/plain`` or form POST to any address without asking (no CORS preflight); requiring
  JSON means a cross-site page must ask first, and CORS stays off unless ``--cors-origin``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from serve.errors import BadHost, BadQuery, UnsupportedMediaType

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = {"0.0.0.0", "::", ""}


def default_allowed_hosts(bind: str) -> list[str]:
    """The loopback names, plus the address the server binds to when it is a specific one."""
    names = list(LOOPBACK_NAMES)
    if bind not in WILDCARD_ADDRESSES and bind not in names:
        names.append(bind)
    return names


def host_name(header: str) -> str:
    """``Host`` without its port: ``127.0.0.1:8001`` -> ``127.0.0.1``, ``[::1]:8001`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") > 1:  # a bare IPv6 address (a port needs brackets)
        return header
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


def allowed_hosts_guard(allowed: Iterable[str]) -> Callable[[ASGIConnection[Any, Any, Any, Any], Any], None]:
    names = {host_name(h) for h in allowed}

    def check_host(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if "*" in names:
            return
        header = connection.headers.get("host", "")
        if host_name(header) not in names:
            raise BadHost(
                f"Host: {header[:100]!r} is not a name this server answers to "
                f"(allowed: {', '.join(sorted(names))}; add one with --allowed-host)",
                field="Host",
                rule="allowed hosts",
            )

    return check_host


def require_json(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """415 for a POST whose Content-Type is not application/json (a charset parameter is fine);
    a route with ``opt={"any_content_type": True}`` (``/invocations``: CSV too) checks its own."""
    if connection.scope.get("method") != "POST" or handler.opt.get("any_content_type"):
        return
    content_type = connection.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type: {content_type[:100] or 'missing'}; POST routes take application/json "
            "(curl: -H 'Content-Type: application/json')",
            field="Content-Type",
            rule="application/json",
        )


INTEGER_QUERIES = ("start", "end", "limit")  # every integer query parameter of the API
_INTEGER = re.compile(r"-?[0-9]+")


def integer_queries(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """400 for an integer query parameter written as anything else (``end=0.0``, ``limit=1e3``):
    Litestar would take a float that happens to be whole, which the schema says is no integer."""
    for name in INTEGER_QUERIES:
        for value in connection.query_params.getall(name, []):
            if not _INTEGER.fullmatch(value):
                raise BadQuery(
                    f"query {name}: {value[:40]!r} is not an integer"
                    + (" (Unix seconds)" if name != "limit" else ""),
                    field=name,
                    rule="integer",
                )
