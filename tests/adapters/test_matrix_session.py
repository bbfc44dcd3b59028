"""The saved login, and how Matrix errors reach the core (no homeserver)."""

from __future__ import annotations

import stat
from pathlib import Path

from nio import RoomSendError

from adapters.matrix_delivery import platform_error
from adapters.matrix_session import (
    CREDENTIALS_FILE,
    Credentials,
    load_credentials,
    save_credentials,
)
from assistant.platform import PermanentFailure, RecipientGone, RetryLater


def test_credentials_are_saved_for_the_owner_only_and_read_back(tmp_path: Path) -> None:
    saved = Credentials("http://hs", "@bot:hs", "DEVICE", "syt_secret")

    save_credentials(tmp_path / "store", saved)

    path = tmp_path / "store" / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credentials(tmp_path / "store") == saved
    assert "syt_secret" not in repr(saved)


def test_missing_or_broken_credentials_mean_log_in_again(tmp_path: Path) -> None:
    assert load_credentials(tmp_path) is None
    (tmp_path / CREDENTIALS_FILE).write_text("{not json")
    assert load_credentials(tmp_path) is None


def test_rate_limit_becomes_retry_later_with_the_servers_wait() -> None:
    error = platform_error(RoomSendError.from_dict(
        {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 2500}, "!room"))

    assert isinstance(error, RetryLater) and error.after_seconds == 2.5


def test_forbidden_means_recipient_gone_and_bad_requests_are_permanent() -> None:
    forbidden = RoomSendError.from_dict({"errcode": "M_FORBIDDEN", "error": "not in room"}, "!room")
    too_large = RoomSendError.from_dict({"errcode": "M_TOO_LARGE", "error": "too large"}, "!room")
    unknown = RoomSendError.from_dict({"errcode": "M_UNKNOWN", "error": "oops"}, "!room")

    assert isinstance(platform_error(forbidden), RecipientGone)
    assert isinstance(platform_error(too_large), PermanentFailure)
    assert isinstance(platform_error(unknown), RetryLater)
