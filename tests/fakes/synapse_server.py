"""A real Synapse homeserver on loopback for end-to-end tests.

Usage (the session-scoped ``synapse`` fixture is ready to import into conftest.py)::

    from tests.fakes.synapse_server import synapse  # noqa: F401 (fixture)

    async def test_x(synapse: SynapseServer) -> None:
        user_id, token, device_id = synapse.register_user("alice", "pw")
        client = AsyncClient(synapse.url, user_id, device_id)
        client.restore_login(user_id, device_id, token)

Outside pytest: ``with SynapseServer() as hs:`` or ``async with SynapseServer()``
(start runs in a thread). ``synapse_fixture(rate_limits=True, ...)`` builds
more fixtures. ``start_seconds`` says how long start took: on an idle
machine ~5 s for the first server (2.3 s of it --generate-config, cached per
process) and 2-3 s for each further one; several times that under load.

Findings about matrix-nio 0.26 (for the Matrix adapter)

End-to-end encryption (vodozemac 0.10) works against this server. What made
the recipient decrypt (test_encrypted_dm_is_decrypted_by_recipient):
  * ``AsyncClient(url, user_id, device_id, store_path,
    AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True))`` and
    ``restore_login(user_id, device_id, token)``: this loads the Olm account
    and the sync token from store_path. Keep the store and device id: a
    restarted client with both decrypts new messages and resumes from its token.
  * ``if client.should_upload_keys: await client.keys_upload()`` on both sides
    before anyone sends; ``sync()`` does not upload keys (``sync_forever`` does).
  * Sender: sync until the recipient is joined, then
    ``room_send(..., ignore_unverified_devices=True)``. room_send itself fetches
    members, runs keys_query, claims one-time keys and shares the Megolm
    session. Without it room_send raises ``OlmUnverifiedDeviceError`` (an
    ``OlmTrustError``); the alternative is ``client.verify_device(d)`` for
    each ``d`` in ``client.device_store.active_user_devices(user_id)``.
  * Recipient: a later ``sync()`` brings the m.room_key to-device event and
    the timeline event, already decrypted: ``RoomMessageText`` with
    ``decrypted=True``.

Rate limits (nio/client/async_client.py ``_send``, observed against Synapse):
  * On 429 / M_LIMIT_EXCEEDED nio sleeps ``retry_after_ms`` (5 s if it is 0 or
    absent, and Synapse does answer 0 at times) and resends the same request,
    so the same transaction id: no duplicates.
    It runs the response callbacks with each intermediate ``RoomSendError``
    and logs a WARNING; the awaiting coroutine is blocked meanwhile.
  * ``max_limit_exceeded=N`` allows N retries; after that room_send returns
    (does not raise) ``RoomSendError`` with ``status_code == "M_LIMIT_EXCEEDED"``,
    ``retry_after_ms`` set and ``transport_response.status == 429``; that final
    error does not reach the response callbacks. Default None retries forever.
  * Synapse defaults (rate_limits=True): 25 sequential messages took 80 s
    (about 9 pass, then one per ~5 s). After ``override_ratelimit`` the same
    25 took 1.1 s. Concurrent sends each retry on their own; all arrive, in
    any order. Synapse's sync returns only the last 10 timeline events per
    room unless a filter raises the limit.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import hmac
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

logger = logging.getLogger(__name__)

SERVER_NAME = "localhost"
START_TIMEOUT = 60.0
STOP_GRACE = 5.0

_UNLIMITED = {"per_second": 1000, "burst_count": 1000}
# Every client-facing rate limit Synapse 1.163 reads (synapse/config/ratelimiting.py).
_RATE_LIMIT_KEYS = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
    "rc_admin_redaction",
)
_NESTED_RATE_LIMITS = {
    "rc_login": ("address", "account", "failed_attempts"),
    "rc_joins": ("local", "remote"),
    "rc_invites": ("per_room", "per_user", "per_issuer"),
    "rc_presence": ("per_user",),
}


def unlimited_rate_limits() -> dict[str, Any]:
    """Config entries that effectively switch off Synapse's rate limits."""
    limits: dict[str, Any] = {key: dict(_UNLIMITED) for key in _RATE_LIMIT_KEYS}
    for key, subkeys in _NESTED_RATE_LIMITS.items():
        limits[key] = {sub: dict(_UNLIMITED) for sub in subkeys}
    return limits


def _free_port() -> int:
    """An ephemeral port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_config(log_file: Path) -> dict[str, Any]:
    """WARNING and above to a file, so a failing start can show its cause."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "plain",
                "filename": str(log_file),
            }
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
    }


@functools.cache
def _generated_config() -> tuple[dict[str, Any], bytes]:
    """Config and signing key from --generate-config; it takes ~2 s, so once per process."""
    with tempfile.TemporaryDirectory(prefix="synapse-gen-") as tmp:
        path = Path(tmp) / "homeserver.yaml"
        subprocess.run(
            [
                sys.executable, "-m", "synapse.app.homeserver",
                "--server-name", SERVER_NAME,
                "--config-path", str(path),
                "--generate-config", "--report-stats=no",
            ],
            cwd=tmp, check=True, capture_output=True,
        )  # fmt: skip
        config = yaml.safe_load(path.read_text())
        return config, Path(config["signing_key_path"]).read_bytes()


def _mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """HMAC-SHA1 that /_synapse/admin/v1/register expects."""
    parts = [nonce, user, password, "admin" if admin else "notadmin"]
    message = "\x00".join(parts).encode("utf8")
    return hmac.new(secret.encode("utf8"), message, hashlib.sha1).hexdigest()


class SynapseError(RuntimeError):
    """Synapse failed to start or answered an admin call with an error."""


class SynapseServer:
    """One throwaway Synapse process with its own temp dir, port and SQLite db."""

    def __init__(
        self,
        rate_limits: bool = False,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.rate_limits = rate_limits
        self.config_overrides = config_overrides or {}
        self.registration_secret = "test-shared-secret"
        self.port = 0
        self.start_seconds = 0.0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Homeserver base URL for clients (http://127.0.0.1:<port>)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Synapse's WARNING log; stdout and stderr go to console.log beside it."""
        assert self._dir is not None, "server not started"
        return self._dir / "homeserver.log"

    # Lifecycle

    def start(self) -> None:
        """Generate a config, start Synapse and wait until clients can talk to it."""
        began = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="synapse-test-"))
        try:
            self._spawn(self._write_config())
            self._wait_until_ready(began + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        logger.info("Synapse on %s ready in %.1f s", self.url, self.start_seconds)

    def _spawn(self, config_path: Path) -> None:
        """Run Synapse from this venv, its console output going to console.log."""
        assert self._dir is not None
        with open(self._dir / "console.log", "wb") as console:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config_path)],
                cwd=self._dir,
                stdout=console,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if Synapse lingers; remove the temp dir."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def astart(self) -> None:
        """start() without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """stop() without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SynapseServer:
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # Config

    def _write_config(self) -> Path:
        """Synapse's generated config, made test-sized, in this server's temp dir."""
        assert self._dir is not None
        generated, signing_key = _generated_config()
        key_path = self._dir / "signing.key"
        key_path.write_bytes(signing_key)
        config = {**copy.deepcopy(generated), **self._overrides(), "signing_key_path": str(key_path)}
        path = self._dir / "homeserver.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _overrides(self) -> dict[str, Any]:
        """Loopback only, no federation or network, SQLite and media in the temp dir."""
        assert self._dir is not None
        self.port = _free_port()
        log_config = self._dir / "log.yaml"
        log_config.write_text(yaml.safe_dump(_log_config(self._dir / "homeserver.log")))
        client_listener = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client"], "compress": False}],
        }
        overrides: dict[str, Any] = {
            "listeners": [client_listener],
            "database": {"name": "sqlite3", "args": {"database": str(self._dir / "homeserver.db")}},
            "media_store_path": str(self._dir / "media_store"),
            "log_config": str(log_config),
            "pid_file": str(self._dir / "homeserver.pid"),
            "enable_registration": False,
            "registration_shared_secret": self.registration_secret,
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "presence": {"enabled": False},
            "enable_metrics": False,
        }
        if not self.rate_limits:
            overrides.update(unlimited_rate_limits())
        overrides.update(self.config_overrides)
        return overrides

    def _wait_until_ready(self, deadline: float) -> None:
        """Poll /versions; fail fast with the log tail if the process exits."""
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SynapseError(
                    f"Synapse exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise SynapseError(f"Synapse not ready after {START_TIMEOUT} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the console output and the Synapse log, for error messages."""
        assert self._dir is not None
        tails = []
        for name in ("console.log", "homeserver.log"):
            path = self._dir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                tails.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(tails)

    # Admin API

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str = ""
    ) -> dict[str, Any]:
        """One JSON request; errors become SynapseError with Synapse's answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as error:
            raise SynapseError(f"{method} {path}: {error.code} {error.read()!r}") from error

    def register_user(
        self, localpart: str, password: str, admin: bool = False
    ) -> tuple[str, str, str]:
        """Create a user via shared-secret registration: (user_id, access_token, device_id)."""
        path = "/_synapse/admin/v1/register"
        nonce = self._request("GET", path)["nonce"]
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": _mac(self.registration_secret, nonce, localpart, password, admin),
        }
        answer = self._request("POST", path, body)
        return answer["user_id"], answer["access_token"], answer["device_id"]

    def override_ratelimit(self, user_id: str, admin_token: str) -> None:
        """Lift a user's message rate limit (0 means unlimited), as an admin would for the bot."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        self._request("POST", path, {"messages_per_second": 0, "burst_count": 0}, admin_token)


def synapse_fixture(
    rate_limits: bool = False,
    config_overrides: dict[str, Any] | None = None,
    scope: str = "session",
    name: str = "synapse",
) -> Any:
    """Build a pytest fixture that runs one SynapseServer for the given scope."""

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def _fixture() -> Iterator[SynapseServer]:
        server = SynapseServer(rate_limits=rate_limits, config_overrides=config_overrides)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    return _fixture


synapse = synapse_fixture()
"""Session-wide Synapse without rate limits; import it into conftest.py."""
