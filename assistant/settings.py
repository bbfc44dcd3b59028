"""The one typed settings object, read from the environment (and `.env`) once at start-up."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KNOWLEDGE_DIR = PROJECT_ROOT / "knowledge"


def _load_dotenv(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines from a `.env` file; the real environment wins over it."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _parse_admins(raw: str) -> frozenset[str]:
    """`telegram:123,matrix:@a:b` -> platform-qualified ids; blanks ignored."""
    return frozenset(part.strip() for part in raw.split(",") if ":" in part.strip())


def _parse_quiet_hours(raw: str) -> tuple[int, int] | None:
    """`22-08` -> (22, 8); empty turns quiet hours off."""
    raw = raw.strip()
    if not raw:
        return None
    start, _, end = raw.partition("-")
    hours = (int(start), int(end))
    if not all(0 <= h <= 23 for h in hours):
        raise ValueError(f"QUIET_HOURS must look like 22-08, got {raw!r}")
    return hours


def _webhook_secret(token: str, webhook_url: str) -> str:
    """The webhook's secret when none is configured: the same in every process of one bot
    (a random one each would make the last process to start reject the others' updates),
    and not the token itself (Telegram sends the secret in every request)."""
    if not (token and webhook_url):
        return ""
    return hashlib.sha256(f"asukasbotti-webhook:{token}".encode()).hexdigest()


@dataclass(frozen=True)
class Settings:
    """Everything configurable; see `.env.example` for each variable and its default."""

    database_url: str = "sqlite:///data/assistant.db"
    knowledge_dir: Path = DEFAULT_KNOWLEDGE_DIR
    admins: frozenset[str] = frozenset()
    default_language: str = "fi"
    log_level: str = "INFO"
    telegram_bot_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str = ""
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = 8443
    telegram_webhook_secret: str = ""
    matrix_homeserver: str = ""
    matrix_user_id: str = ""
    matrix_password: str = ""
    matrix_access_token: str = ""
    matrix_device_id: str = ""
    matrix_store_path: Path = Path("data/matrix-store")
    matrix_allowed_servers: frozenset[str] = frozenset()
    quiet_hours: tuple[int, int] | None = (22, 8)
    timezone: str = "Europe/Helsinki"
    feed_poll_minutes: int = 30
    retention_days: int = 90
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def matrix_enabled(self) -> bool:
        return bool(self.matrix_homeserver and self.matrix_user_id and (
            self.matrix_password or self.matrix_access_token))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> "Settings":
        """Build settings from `env` (default: os.environ over `.env` in the working directory)."""
        if env is None:
            merged = _load_dotenv(dotenv or Path(".env"))
            merged.update(os.environ)
            env = merged
        get = env.get
        return cls(
            database_url=get("DATABASE_URL") or cls.database_url,
            knowledge_dir=Path(get("KNOWLEDGE_DIR") or DEFAULT_KNOWLEDGE_DIR),
            admins=_parse_admins(get("ASSISTANT_ADMINS", "")),
            default_language=get("DEFAULT_LANGUAGE") or "fi",
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            telegram_bot_token=get("TELEGRAM_BOT_TOKEN", ""),
            telegram_api_url=(get("TELEGRAM_API_URL") or cls.telegram_api_url).rstrip("/"),
            telegram_webhook_url=get("TELEGRAM_WEBHOOK_URL", ""),
            telegram_webhook_listen=get("TELEGRAM_WEBHOOK_LISTEN") or "127.0.0.1",
            telegram_webhook_port=int(get("TELEGRAM_WEBHOOK_PORT") or 8443),
            telegram_webhook_secret=(get("TELEGRAM_WEBHOOK_SECRET", "")
                                     or _webhook_secret(get("TELEGRAM_BOT_TOKEN", ""),
                                                        get("TELEGRAM_WEBHOOK_URL", ""))),
            matrix_homeserver=get("MATRIX_HOMESERVER", ""),
            matrix_user_id=get("MATRIX_USER_ID", ""),
            matrix_password=get("MATRIX_PASSWORD", ""),
            matrix_access_token=get("MATRIX_ACCESS_TOKEN", ""),
            matrix_device_id=get("MATRIX_DEVICE_ID", ""),
            matrix_store_path=Path(get("MATRIX_STORE_PATH") or "data/matrix-store"),
            matrix_allowed_servers=frozenset(
                s.strip() for s in get("MATRIX_ALLOWED_SERVERS", "").split(",") if s.strip()),
            quiet_hours=_parse_quiet_hours(get("QUIET_HOURS", "22-08")),
            timezone=get("TIMEZONE") or "Europe/Helsinki",
            feed_poll_minutes=int(get("FEED_POLL_MINUTES") or 30),
            retention_days=int(get("RETENTION_DAYS") or 90),
            metrics_port=int(get("METRICS_PORT") or 0),
            metrics_host=get("METRICS_HOST") or "127.0.0.1",
            extra=dict(env),
        )
