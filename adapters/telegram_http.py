"""PTB's networking backend on aiohttp instead of httpx.

python-telegram-bot lets the HTTP client be swapped (`BaseRequest`). Measured against a
local Bot API server, httpx 0.28 costs 3-6 ms of CPU per request (more the more requests
run at once) and aiohttp about 0.4-0.9 ms, so the adapter's throughput depends on it.
Errors are PTB's own (`TimedOut`, `NetworkError`), so PTB's retry logic works unchanged;
their messages never carry the URL, which contains the bot token.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlencode

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

try:  # the same CA bundle httpx would have used
    import certifi

    _CA_FILE: str | None = certifi.where()
except ImportError:  # pragma: no cover
    _CA_FILE = None


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a pool of `pool_size` connections; created in `initialize()`."""

    def __init__(self, pool_size: int = 256, read_timeout: float | None = 5.0,
                 connect_timeout: float | None = 5.0, pool_timeout: float | None = 1.0):
        self.pool_size = pool_size
        self._read_timeout = read_timeout
        self._connect_timeout, self._pool_timeout = connect_timeout, pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            context = ssl.create_default_context(cafile=_CA_FILE)
            connector = aiohttp.TCPConnector(limit=self.pool_size, ssl=context)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: object = BaseRequest.DEFAULT_NONE,
                         write_timeout: object = BaseRequest.DEFAULT_NONE,
                         connect_timeout: object = BaseRequest.DEFAULT_NONE,
                         pool_timeout: object = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_read=_given(read_timeout, self._read_timeout),
            sock_connect=_given(connect_timeout, self._connect_timeout),
            connect=_sum(_given(pool_timeout, self._pool_timeout),
                         _given(connect_timeout, self._connect_timeout)))
        try:
            async with self._session.request(method, url, data=_body(request_data),
                                             timeout=timeout) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise TimedOut(f"aiohttp.{type(error).__name__}") from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}") from error


def _body(request_data: RequestData | None) -> aiohttp.FormData | aiohttp.Payload | None:
    """Form fields, as PTB's httpx backend sends them; multipart when there are files.

    Plain fields are encoded here as aiohttp's FormData would encode them, without its
    per-request machinery (a multipart writer and a random boundary it does not use).
    """
    if request_data is None:
        return None
    files = request_data.multipart_data
    if not files:
        encoded = urlencode(request_data.json_parameters, doseq=True).encode()
        return aiohttp.BytesPayload(encoded, content_type="application/x-www-form-urlencoded")
    form = aiohttp.FormData(request_data.json_parameters)
    for name, (filename, content, mime_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form


def _given(value: object, default: float | None) -> float | None:
    """PTB passes DEFAULT_NONE for "use your default" and None for "no timeout"."""
    if isinstance(value, DefaultValue):
        return default
    return value if value is None else float(value)  # type: ignore[arg-type]


def _sum(*parts: float | None) -> float | None:
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
