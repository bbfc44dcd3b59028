"""Command line: `python -m assistant [chat|run|ask|kb ...]`, also installed as `asukasbotti`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from . import logredact
from .settings import Settings
from .store.db import SchemaError

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    platforms = settings.telegram_enabled or settings.matrix_enabled
    command = args.command or ("run" if platforms else "chat")
    serving = command == "worker" or (command == "run" and platforms)  # the terminal chat stays quiet
    _configure_logging(settings.log_level if serving else "WARNING",
                       secrets=(settings.telegram_bot_token, settings.telegram_webhook_secret,
                                settings.matrix_access_token, settings.matrix_password))
    try:
        return COMMANDS[command](settings, args)
    except KeyboardInterrupt:
        return 130
    except SchemaError as error:
        print(error, file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asukasbotti", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("chat", help="chat with the assistant in this terminal")
    sub.add_parser("run", help="run the configured platforms (terminal chat when none is)")
    sub.add_parser("worker", help="send the outbox and run scheduled jobs, taking no messages")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("db_command", choices=("upgrade", "current"),
                    help="upgrade: run the migrations; current: the schema revision")
    ask = sub.add_parser("ask", help="answer one question, or every line of standard input")
    ask.add_argument("question", nargs="*", help="the question (default: read lines from stdin)")
    ask.add_argument("--json", action="store_true", help="one JSON object per question")
    ask.add_argument("--language", choices=("fi", "sv", "en"), help="force the reply language")
    kb = sub.add_parser("kb", help="knowledge base tools")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    check = kb_sub.add_parser("check", help="validate every knowledge file")
    check.add_argument("--dir", type=Path, help="knowledge folder (default: KNOWLEDGE_DIR)")
    export_kb = kb_sub.add_parser("export", help="write answers edited by chat into topic files")
    export_kb.add_argument("--dir", type=Path, help="knowledge folder (default: KNOWLEDGE_DIR)")
    feedback = sub.add_parser("feedback", help="residents' feedback tools")
    feedback_sub = feedback.add_subparsers(dest="feedback_command", required=True)
    export = feedback_sub.add_parser("export", help="write every feedback item (Open311 field names)")
    export.add_argument("--format", choices=("csv", "json"), default="json")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    return parser


def _configure_logging(level: str, secrets: Sequence[str] = ()) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logredact.install(secrets)  # masks tokens in every record, whichever library logs it
    # Bot API URLs hold the token; alembic announces its plugins at every start.
    for noisy in ("httpx", "httpcore", "nio", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.console import ConsoleAdapter

    from .core import Assistant
    from .router import Router

    router = Router(Assistant(settings))
    console = ConsoleAdapter()
    router.add(console)
    if sys.stdin.isatty():
        print("Asukkaiden Espoo -avustaja. Kirjoita kysymys (/help, /quit).\n")
    asyncio.run(console.start(router.on_message))
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    if not (settings.telegram_enabled or settings.matrix_enabled):
        return cmd_chat(settings, args)
    from .runtime import run_platforms

    asyncio.run(run_platforms(settings))
    return 0


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from .answers import compose
    from .core import Assistant

    assistant = Assistant(settings)
    questions = [" ".join(args.question)] if args.question else (line.rstrip("\n") for line in sys.stdin)
    for question in questions:
        if not question.strip() and not args.question:
            continue
        language = args.language or assistant.languages.guess(question) or settings.default_language
        answer = compose(assistant, question, language)
        if args.json:
            print(json.dumps({
                "question": question, "answer_id": answer.topic_id, "score": round(answer.score, 4),
                "language": answer.language, "text": answer.text,
                "suggestions": list(answer.suggestions)}, ensure_ascii=False), flush=True)
        else:
            print(answer.text)
            for n, choice in enumerate(answer.choices, start=1):
                print(f"  {n}. {choice.label}")
            print(flush=True)
    return 0


def cmd_kb(settings: Settings, args: argparse.Namespace) -> int:
    from . import knowledge

    if args.kb_command == "export":
        from . import kb_export

        return kb_export.run(settings, args)
    directory = args.dir or settings.knowledge_dir
    base, problems = knowledge.check(directory)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(f"ok: {len(base)} topics in {directory}")
    return 0


def cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    from . import feedback_export

    return feedback_export.run(settings, args)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from .runtime import run_worker

    asyncio.run(run_worker(settings))
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from .store import migrate

    return migrate.run_cli(settings.database_url, args.db_command)


COMMANDS = {"chat": cmd_chat, "run": cmd_run, "ask": cmd_ask, "kb": cmd_kb,
            "feedback": cmd_feedback, "worker": cmd_worker, "db": cmd_db}
