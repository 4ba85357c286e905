"""Issue 13, ``curalog serve``: a token in the URL, checked on the page and on the socket;
the Origin and Host checked; a non-loopback --host refused without --allow-remote."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

pytest.importorskip("textual_serve")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from curalog_tui import serve as serve_mod  # noqa: E402
from curalog_tui.serve_auth import COOKIE, guard_for, make_server_class  # noqa: E402

TOKEN = "s3cret-token-for-the-test"


def _server(remote: bool = False):
    Server = make_server_class()
    # the app each accepted socket starts: a process that exits at once
    command = f"{sys.executable} -c pass"
    return Server(command, guard=guard_for("127.0.0.1", TOKEN, allow_remote=remote))


async def _with_client(check):
    app = await _server()._make_app()
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        return await check(client)


def _run(check):
    return asyncio.run(_with_client(check))


def test_the_page_needs_the_token():
    async def check(client):
        no = await client.get("/")
        wrong = await client.get("/", params={"token": "guess"})
        ok = await client.get("/", params={"token": TOKEN})
        static = await client.get("/static/js/textual.js")
        return no.status, wrong.status, ok.status, ok.cookies.get(COOKIE), static.status

    no, wrong, ok, cookie, static = _run(check)
    assert (no, wrong, ok, static) == (403, 403, 200, 200)
    assert cookie is not None and cookie.value == TOKEN
    assert cookie["httponly"] and cookie["samesite"] == "Strict"


def _ws_status(headers: dict[str, str], params: dict[str, str] | None = None):
    async def check(client):
        host = f"{client.host}:{client.port}"
        hdrs = {k: v.replace("HOST", host) for k, v in headers.items()}
        try:
            ws = await client.ws_connect("/ws", headers=hdrs, params=params)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        with contextlib.suppress(asyncio.TimeoutError):  # the app exits: the server closes
            while not ws.closed:
                await asyncio.wait_for(ws.receive(), 10)
        await ws.close()
        await asyncio.sleep(0.2)  # let the server reap the app process
        return 101

    return _run(check)


def test_a_socket_from_another_origin_is_refused_even_with_the_token():
    assert _ws_status({"Origin": "http://evil.example.com"}, {"token": TOKEN}) == 403
    assert _ws_status({"Cookie": f"{COOKIE}={TOKEN}", "Origin": "http://evil.example.com"}) == 403
    assert _ws_status({}, {"token": TOKEN}) == 403  # no Origin at all


def test_a_socket_without_the_token_is_refused():
    assert _ws_status({"Origin": "http://HOST"}) == 403
    assert _ws_status({"Origin": "http://HOST"}, {"token": "nope"}) == 403


def test_the_page_own_socket_is_accepted():
    assert _ws_status({"Origin": "http://HOST", "Cookie": f"{COOKIE}={TOKEN}"}) == 101


def test_a_rebound_host_name_is_refused():
    async def check(client):
        r = await client.get(
            "/", params={"token": TOKEN}, headers={"Host": "evil.example.com:8000"}
        )
        return r.status

    assert _run(check) == 403


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "myhost.example.org"])
def test_a_non_loopback_host_is_refused_without_the_flag(tmp_path, capsys, host):
    assert serve_mod.serve(tmp_path, host=host, port=8123) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-remote" in err[0]


def test_the_printed_url_holds_the_token(tmp_path, monkeypatch, capsys):
    seen = {}

    class Fake:
        def __init__(self, command, *, guard, host, port, title, **assets):
            seen["guard"] = guard  # assets: curalog's page and local statics (issue 15)

        def serve(self):
            pass

    monkeypatch.setattr("curalog_tui.serve_auth.make_server_class", lambda: Fake)
    assert serve_mod.serve(tmp_path) == 0
    out = capsys.readouterr().out
    token = seen["guard"].token
    assert len(token) >= 24 and f"http://127.0.0.1:8000/?token={token}" in out
    assert serve_mod.serve(tmp_path, host="0.0.0.0", allow_remote=True) == 0
    assert seen["guard"].hosts is None and seen["guard"].token != token
