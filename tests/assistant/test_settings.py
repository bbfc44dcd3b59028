"""Settings read from the environment: defaults that matter when several processes share them."""

from __future__ import annotations

from assistant.settings import Settings

TOKEN = "123456789:TEST-espoo-token"
HOOK = "https://bot.example.org/telegram/hook"


def test_a_webhook_without_a_configured_secret_gets_the_same_one_in_every_process() -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_URL": HOOK}
    first, second = Settings.from_env(env), Settings.from_env(dict(env))
    secret = first.telegram_webhook_secret
    assert secret == second.telegram_webhook_secret
    assert len(secret) >= 32 and TOKEN.split(":")[1] not in secret
    assert set(secret) <= set("0123456789abcdef")  # Telegram allows A-Z a-z 0-9 _ -
    other = Settings.from_env({**env, "TELEGRAM_BOT_TOKEN": "987654321:OTHER-token"})
    assert other.telegram_webhook_secret != secret


def test_a_configured_webhook_secret_is_used_as_it_is() -> None:
    settings = Settings.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_URL": HOOK,
                                  "TELEGRAM_WEBHOOK_SECRET": "s3cret-Token_1"})
    assert settings.telegram_webhook_secret == "s3cret-Token_1"


def test_polling_needs_no_webhook_secret() -> None:
    assert Settings.from_env({"TELEGRAM_BOT_TOKEN": TOKEN}).telegram_webhook_secret == ""
