"""A small round-robin HTTP reverse proxy, standing in for the load balancer in front of
several bot processes that share one webhook URL.

It behaves as nginx's `upstream` with its defaults does for a POST: each request goes to
the next backend in turn; a backend that refuses the connection is skipped and the
request passed to the next one (nothing was sent yet); a backend that took the request
but failed or timed out is answered with 502/504, and the request is not passed on (a
POST is not idempotent). `fail_after_forwarding()` makes it lose answers on purpose,
as a proxy timing out on a slow backend does: the backend has the update, Telegram sees
an error and posts the update again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "host", "content-length"}


class RoundRobinProxy:
    """Listens on 127.0.0.1 and forwards every request to `backends` (base URLs) in turn.

    `log` has one entry per request (with `keep_log`): the update_id when the body is
    an update, the backend that took it (None if none could be reached), its status and
    the status answered.
    """

    def __init__(self, backends: Sequence[str], timeout: float = 10.0, keep_log: bool = True):
        self.backends = [b.rstrip("/") for b in backends]
        # Called with each log entry once the backend answered, before the client hears it.
        self.watch: Callable[[dict[str, Any]], None] | None = None
        self.timeout = timeout
        self.keep_log = keep_log
        self.log: list[dict[str, Any]] = []
        self.forwarded = [0] * len(self.backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._lose: list[int] = []  # statuses to answer instead of the backend's, in turn
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_after_forwarding(self, count: int = 1, status: int = 504) -> None:
        """The next `count` requests reach a backend, but the client gets `status`."""
        self._lose.extend([status] * count)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        entry: dict[str, Any] = {"update_id": _update_id(body) if self.keep_log else None,
                                 "backend": None, "upstream": None, "time": time.monotonic()}
        response = await self._pass_on(request, body, headers, entry)
        if self.watch is not None:
            self.watch(entry)
        if entry["upstream"] is not None and self._lose:
            response = web.Response(status=self._lose.pop(0), text="lost by the proxy")
        entry["status"] = response.status
        if self.keep_log:
            self.log.append(entry)
        return response

    async def _pass_on(self, request: web.Request, body: bytes, headers: dict[str, str],
                       entry: dict[str, Any]) -> web.Response:
        """The first backend in turn that accepts the connection answers."""
        assert self._session is not None
        for _ in range(len(self.backends)):
            index = next(self._turn)
            url = self.backends[index] + request.path_qs
            try:
                async with self._session.request(
                    request.method, url, data=body, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as answer:
                    entry["backend"], entry["upstream"] = index, answer.status
                    self.forwarded[index] += 1
                    content = await answer.read()
                    kept = {k: v for k, v in answer.headers.items()
                            if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"}
                    return web.Response(status=answer.status, body=content, headers=kept)
            except aiohttp.ClientConnectorError:
                continue  # refused: nothing was sent, the next backend may take it
            except asyncio.TimeoutError:
                entry["backend"] = index
                return web.Response(status=504, text="gateway timeout")
            except aiohttp.ClientError:
                entry["backend"] = index
                return web.Response(status=502, text="bad gateway")
        return web.Response(status=502, text="no backend")


def _update_id(body: bytes) -> int | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("update_id") if isinstance(data, dict) else None
