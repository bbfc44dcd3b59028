"""The bot's Matrix identity across restarts: one device, its keys and its sync position.

Synapse limits password logins, and every login makes a new device that
residents' clients do not know. So the bot logs in with its password once and
keeps the access token and device id in `credentials.json` (mode 0600) under
MATRIX_STORE_PATH, beside nio's SQLite store with the Olm account, the Megolm
sessions and the sync token.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiError

from assistant.settings import Settings

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
DEVICE_NAME = "Espoo resident assistant"


class LoginFailed(RuntimeError):
    """The homeserver refused the configured password or access token."""


@dataclass(frozen=True)
class Credentials:
    """What a password login returned, kept so the next start needs no login."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str

    def __repr__(self) -> str:  # never show the token in a traceback or log
        return f"Credentials({self.user_id!r}, device {self.device_id!r})"


def load_credentials(store_path: Path) -> Credentials | None:
    """The saved login, or None when there is none or it cannot be read."""
    path = store_path / CREDENTIALS_FILE
    try:
        return Credentials(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        logger.warning("Matrix: %s is unreadable; logging in again", path)
        return None


def save_credentials(store_path: Path, credentials: Credentials) -> None:
    """Write the login readable by the bot's user only (it holds the access token)."""
    store_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = store_path / CREDENTIALS_FILE
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(asdict(credentials), file)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def client_config(max_limit_exceeded: int, max_timeouts: int) -> AsyncClientConfig:
    """E2E on, bounded retries. The sync token is saved by the adapter itself, after the
    events of a sync are handled, so a crash mid-batch replays them instead of losing them."""
    return AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False,
                             max_limit_exceeded=max_limit_exceeded, max_timeouts=max_timeouts,
                             request_timeout=30)


def new_client(settings: Settings, config: AsyncClientConfig) -> AsyncClient:
    store_path = settings.matrix_store_path
    store_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return AsyncClient(settings.matrix_homeserver.rstrip("/"), settings.matrix_user_id,
                       settings.matrix_device_id or "", str(store_path), config)


async def log_in(client: AsyncClient, settings: Settings) -> None:
    """MATRIX_ACCESS_TOKEN if given, else the saved login if still valid, else the password."""
    if settings.matrix_access_token:
        await _restore_token(client, settings)
        return
    saved = load_credentials(settings.matrix_store_path)
    if saved is not None and _matches(saved, settings):
        client.restore_login(saved.user_id, saved.device_id, saved.access_token)
        if await _token_valid(client):
            return
        logger.warning("Matrix: the saved access token was refused; logging in again")
    await password_login(client, settings, saved.device_id if saved else "")


async def password_login(client: AsyncClient, settings: Settings, device_id: str = "") -> None:
    """Log in with MATRIX_PASSWORD, reusing the known device id so the keys stay valid."""
    if not settings.matrix_password:
        raise LoginFailed("no MATRIX_PASSWORD to log in with")
    client.device_id = settings.matrix_device_id or device_id or client.device_id
    response = await client.login(settings.matrix_password, device_name=DEVICE_NAME)
    if not isinstance(response, LoginResponse):
        raise LoginFailed(f"password login refused: {response.status_code}")
    save_credentials(settings.matrix_store_path, Credentials(
        settings.matrix_homeserver.rstrip("/"), response.user_id, response.device_id,
        response.access_token))
    logger.info("Matrix: logged in as %s, device %s", response.user_id, response.device_id)


async def _restore_token(client: AsyncClient, settings: Settings) -> None:
    """A token from the environment; its device id from MATRIX_DEVICE_ID or whoami."""
    client.access_token = settings.matrix_access_token
    device_id = settings.matrix_device_id
    if not device_id:
        answer = await client.whoami()
        if isinstance(answer, WhoamiError) or not answer.device_id:
            raise LoginFailed("MATRIX_ACCESS_TOKEN refused, or set MATRIX_DEVICE_ID")
        device_id = answer.device_id
    client.restore_login(settings.matrix_user_id, device_id, settings.matrix_access_token)


async def _token_valid(client: AsyncClient) -> bool:
    """False only when the server says the token is unknown; other errors are retried later."""
    answer = await client.whoami()
    return not (isinstance(answer, WhoamiError) and answer.status_code == "M_UNKNOWN_TOKEN")


def _matches(saved: Credentials, settings: Settings) -> bool:
    return (saved.user_id == settings.matrix_user_id
            and saved.homeserver == settings.matrix_homeserver.rstrip("/"))


def saved_sync_token(client: AsyncClient) -> str:
    """Where the last handled sync ended; empty on the very first start."""
    return (client.store.load_sync_token() or "") if client.store else ""


def save_sync_token(client: AsyncClient, token: str) -> None:
    if client.store and token:
        client.store.save_sync_token(token)
