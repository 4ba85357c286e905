"""Who may drive a served UI (``curalog serve``): a secret token, the Host and the Origin.

textual-serve starts one app per WebSocket connection and checks nobody: any web page the
user happens to visit could open ``ws://127.0.0.1:8000/ws`` from the browser (a cross-site
WebSocket; browsers allow them) and curate as the user, and so could a page whose DNS name
is rebound to 127.0.0.1. :class:`AuthServer` refuses, with 403, every request except the
static assets unless

* it carries the session's secret token: ``?token=...`` on the page URL printed at start;
  the page's answer sets it as an ``HttpOnly``, ``SameSite=Strict`` cookie, which the
  browser sends with the page's own WebSocket (and never with another site's);
* its ``Host`` header names the bound address or a loopback name (no DNS rebinding;
  skipped when serving to other machines with ``--allow-remote``);
* for the WebSocket, its ``Origin`` is the page's own (``http://<Host>``): another site's
  page is refused even if it knew the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

COOKIE = "curalog_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def new_token() -> str:
    """A fresh secret for one ``curalog serve`` run (192 bits)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: reachable from this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """``'127.0.0.1:8000'`` -> ``'127.0.0.1'``; ``'[::1]:8000'`` -> ``'::1'``."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


@dataclass(frozen=True)
class Guard:
    """The checks of one served session (see the module docstring)."""

    token: str
    hosts: frozenset[str] | None  # allowed Host names; None: any (--allow-remote)

    def refusal(self, request) -> str | None:
        """Why ``request`` (an aiohttp request) is refused, or None."""
        if request.path.startswith("/static/"):
            return None
        host = request.headers.get("Host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            return f"unexpected Host {host!r}"
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return "no or wrong token: open the URL printed by curalog serve"
        if request.headers.get("Upgrade", "").lower() == "websocket" or request.path == "/ws":
            origin = request.headers.get("Origin", "").rstrip("/").lower()
            if origin not in (f"http://{host.lower()}", f"https://{host.lower()}"):
                return f"WebSocket from another origin ({origin or 'none given'})"
        return None

    def middleware(self) -> Callable:
        from aiohttp import web

        @web.middleware
        async def guard(request, handler: Callable[..., Awaitable]):
            why = self.refusal(request)
            if why is not None:
                raise web.HTTPForbidden(text=f"curalog serve: forbidden: {why}\n")
            response = await handler(request)
            if request.query.get("token") and isinstance(response, web.Response):
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return response

        return guard


def make_server_class():
    """textual-serve's Server with the guard in front of every route (imported lazily:
    textual-serve is an optional dependency)."""
    from textual_serve.server import Server

    class AuthServer(Server):
        def __init__(self, command: str, *, guard: Guard, **kwargs):
            super().__init__(command, **kwargs)
            self.guard = guard

        async def _make_app(self):
            app = await super()._make_app()
            app.middlewares.append(self.guard.middleware())
            return app

        async def on_startup(self, app) -> None:
            # textual-serve would print its URL without the token (which answers 403):
            # curalog serve has printed the one to open
            return None

    return AuthServer


def guard_for(host: str, token: str, *, allow_remote: bool) -> Guard:
    hosts = None if allow_remote else frozenset({host.strip("[]").lower(), *LOOPBACK_NAMES})
    return Guard(token, hosts)


__all__ = ["COOKIE", "Guard", "guard_for", "is_loopback", "make_server_class", "new_token"]
