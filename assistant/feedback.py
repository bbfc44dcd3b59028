"""Residents' feedback to the group: a short guided form, a one-message shortcut, own items.

The form is a state table (`Step`), kept in the database between messages. An item
is committed before the resident is told its reference; admins hear of it at once.
Admin commands live in `feedback_admin.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from enum import Enum
from typing import TYPE_CHECKING, Awaitable, Callable

from . import answers, commands, feedback_admin, textnorm
from .commands import Command
from .messages import Choice, Reply
from .districts import District
from .feedback_admin import district_name, gazetteer_of, local_date, shorten
from .store.feedback import REFERENCE, FeedbackItem, FeedbackStore
from .store.residents import utcnow
from .store.updates import message_key

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

FLOW = "feedback"
FORM_TIMEOUT = dt.timedelta(minutes=30)
MAX_FEEDBACK_CHARS = 4000
HOURLY_LIMIT = 10
KINDS = ("feedback", "proposal", "question", "fault")
# Espoo publishes no separate sv/en address for its feedback service (espoo-facts.md).
CITY_FEEDBACK_URL = "https://www.espoo.fi/fi/palautepalvelu"
CLOSE_WORDS = {"close", "sulje", "stäng", "stang"}
SKIP = "-"


class Step(str, Enum):
    """The form's questions, in order."""

    KIND = "kind"
    DISTRICT = "district"
    TEXT = "text"
    REPLY = "reply"
    CONFIRM = "confirm"


def register(assistant: "Assistant") -> None:
    assistant.feedback = FeedbackStore(assistant.db, assistant.settings.timezone)
    table = assistant.commands
    table.add(Command("feedback", feedback_command, "feedback_help",
                      aliases=("palaute", "respons")))
    table.add(Command("myfeedback", my_feedback, "feedback_help_mine",
                      aliases=("omapalaute", "minrespons")))
    if table.find("cancel") is None:
        table.add(Command("cancel", cancel, "feedback_help_cancel", aliases=("peru", "avbryt")))
    table.on_choice("fb", on_button)
    table.on_flow(FLOW, on_text)
    intents = getattr(assistant, "text_intents", None)
    if intents is not None:
        intents.append(offer_form)
    feedback_admin.register(assistant)


# commands ---------------------------------------------------------------

async def feedback_command(ctx: "Context", args: str) -> list[Reply]:
    """`/feedback` opens the form; `/feedback <text>` files at once; `close <ref>` is for admins."""
    first, rest = (args.split(maxsplit=1) + ["", ""])[:2]
    if first.lower() in CLOSE_WORDS and (not rest or REFERENCE.match(rest)):
        if not ctx.has_role("moderator"):  # the core's answer to a command one may not use
            parsed = commands.parse(ctx.incoming.text)
            name = parsed.name if parsed else "feedback"
            return ctx.reply("unknown_command", command=f"{name} {first.lower()}"[:32])
        return await feedback_admin.close(ctx, rest)
    if ctx.incoming.group:
        return ctx.reply("feedback_private_only")
    if not args:
        return await start_form(ctx)
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if flow is not None and flow.name == FLOW:  # the half-filled form is replaced by this one
        ctx.assistant.residents.clear_flow(ctx.resident.id)
    return _submit(ctx, {"kind": "feedback", "district": None, "text": args, "reply": False})


async def my_feedback(ctx: "Context", args: str) -> list[Reply]:
    """The resident's own items with their status, newest first."""
    if ctx.incoming.group:
        return ctx.reply("feedback_private_only")
    items = ctx.assistant.feedback.of_resident(ctx.resident.id)[:20]
    if not items:
        return ctx.reply("feedback_mine_none")
    lines = [ctx.t("feedback_mine_intro")]
    for item in items:
        lines += ["", _mine_line(ctx, item)]
    return ctx.say("\n".join(lines))


async def cancel(ctx: "Context", args: str) -> list[Reply]:
    """Leave whatever form is open; shared by every feature with a dialogue."""
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if flow is None:
        return ctx.reply("feedback_nothing_to_cancel")
    ctx.assistant.residents.clear_flow(ctx.resident.id)
    return ctx.reply("feedback_cancelled" if flow.name == FLOW else "feedback_cancel_done")


async def offer_form(ctx: "Context", text: str) -> list[Reply] | None:
    """"haluan antaa palautetta": offer the form (and the city's service) instead of an answer."""
    if ctx.incoming.group or not wants_to_give_feedback(text):
        return None
    return ctx.reply("feedback_offer", Choice(ctx.t("feedback_start_button"), "fb:start"),
                     url=CITY_FEEDBACK_URL)


_FEEDBACK_WORDS = ("palaute", "palautte", "respons", "feedback")
_WISH_WORDS = {"haluan", "haluun", "haluaisin", "haluisin", "tahdon", "tahtoisin", "haluamme",
               "vill", "ville", "vilja", "want", "wanna", "like"}


def wants_to_give_feedback(text: str) -> bool:
    """A wish ("haluan", "vill", "want") plus a feedback word, in a short message."""
    words = [textnorm.fold(w) for w in textnorm.words(text)]
    if not words or len(words) > 12:
        return False
    has_wish = any(w in _WISH_WORDS for w in words)
    return has_wish and any(w.startswith(_FEEDBACK_WORDS) for w in words)


# the form ---------------------------------------------------------------

async def start_form(ctx: "Context") -> list[Reply]:
    if ctx.incoming.group:
        return ctx.reply("feedback_private_only")
    if _over_limit(ctx):
        return ctx.reply("feedback_limit", limit=HOURLY_LIMIT)
    _save(ctx, Step.KIND, {"form": uuid.uuid4().hex})  # names the item it files (see send)
    return _ask_kind(ctx, "feedback_ask_kind")


async def on_text(ctx: "Context", text: str) -> list[Reply]:
    """Free text while the form is open goes to the current step."""
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if ctx.incoming.group or flow is None:  # the form is private: group talk is not its answer
        return await answers.answer_question(ctx, text)
    if _timed_out(flow.data):
        return _time_out(ctx)
    return await TEXT_STEPS[Step(flow.step)](ctx, dict(flow.data), text)


async def on_button(ctx: "Context", argument: str) -> list[Reply]:
    """Buttons `fb:start`, `fb:k:<kind>`, `fb:d:<district>`, `fb:r:1|0`, `fb:send`, `fb:cancel`."""
    if argument == "start":
        return await start_form(ctx)
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if flow is None or flow.name != FLOW:
        return ctx.reply("choice_expired")
    if _timed_out(flow.data):
        return _time_out(ctx)
    action, _, value = argument.partition(":")
    step, handler = BUTTON_STEPS.get(action, (None, None))
    if handler is None or flow.step != step:
        return ctx.reply("choice_expired")
    return await handler(ctx, dict(flow.data), value)


async def kind_chosen(ctx: "Context", data: dict, kind: str) -> list[Reply]:
    if kind not in KINDS:
        return ctx.reply("choice_expired")
    data["kind"] = kind
    note = ctx.reply("feedback_fault_note", url=CITY_FEEDBACK_URL) if kind == "fault" else []
    return note + _ask_district(ctx, data)


async def kind_typed(ctx: "Context", data: dict, text: str) -> list[Reply]:
    return _ask_kind(ctx, "feedback_pick_kind")


async def district_chosen(ctx: "Context", data: dict, district_id: str) -> list[Reply]:
    gazetteer = gazetteer_of(ctx.assistant)
    if district_id != SKIP and (gazetteer is None or gazetteer.get(district_id) is None):
        return ctx.reply("choice_expired")
    data["district"] = None if district_id == SKIP else district_id
    return _ask_text(ctx, data)


async def district_typed(ctx: "Context", data: dict, text: str) -> list[Reply]:
    """A place name: resolved by the gazetteer, or candidates offered as choices."""
    gazetteer = gazetteer_of(ctx.assistant)
    resolution = gazetteer.resolve(text) if gazetteer is not None else None
    if resolution is not None and resolution.district is not None:
        return await district_chosen(ctx, data, resolution.district.id)
    if resolution is not None and resolution.candidates:
        choices = [_district_choice(ctx, d) for d in resolution.candidates[:8]]
        return ctx.reply("feedback_district_which", *choices, _skip_choice(ctx))
    return ctx.reply("feedback_district_unknown", *_major_choices(ctx), _skip_choice(ctx))


async def text_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    problem = _text_problem(ctx, text)
    if problem:
        return problem
    data["text"] = text.strip()
    _save(ctx, Step.REPLY, data)
    return _ask_reply(ctx, "feedback_ask_reply")


async def reply_chosen(ctx: "Context", data: dict, value: str) -> list[Reply]:
    data["reply"] = value == "1"
    _save(ctx, Step.CONFIRM, data)
    return ctx.say(_summary(ctx, data), *_confirm_choices(ctx))


async def reply_typed(ctx: "Context", data: dict, text: str) -> list[Reply]:
    return _ask_reply(ctx, "feedback_pick_reply")


async def confirm_typed(ctx: "Context", data: dict, text: str) -> list[Reply]:
    return ctx.reply("feedback_pick_confirm", *_confirm_choices(ctx))


async def send(ctx: "Context", data: dict, value: str) -> list[Reply]:
    """File first, then close the form: a press handled again after a crash finds the form
    still open and its item already filed (keyed by the form), so nothing is lost or doubled."""
    form = data.get("form")
    source = hashlib.sha256(f"form:{form}".encode()).hexdigest() if form else None
    replies = _submit(ctx, data, source)
    ctx.assistant.residents.clear_flow(ctx.resident.id)
    return replies


async def cancel_button(ctx: "Context", data: dict, value: str) -> list[Reply]:
    ctx.assistant.residents.clear_flow(ctx.resident.id)
    return ctx.reply("feedback_cancelled")


StepHandler = Callable[["Context", dict, str], Awaitable[list[Reply]]]
TEXT_STEPS: dict[Step, StepHandler] = {
    Step.KIND: kind_typed, Step.DISTRICT: district_typed, Step.TEXT: text_given,
    Step.REPLY: reply_typed, Step.CONFIRM: confirm_typed,
}
BUTTON_STEPS: dict[str, tuple[Step, StepHandler]] = {
    "k": (Step.KIND, kind_chosen), "d": (Step.DISTRICT, district_chosen),
    "r": (Step.REPLY, reply_chosen), "send": (Step.CONFIRM, send),
    "cancel": (Step.CONFIRM, cancel_button),
}


# filing -----------------------------------------------------------------

def _submit(ctx: "Context", data: dict, source: str | None = None) -> list[Reply]:
    """Validate, commit, then acknowledge with the reference and notify the admins.

    `source` names what the item is filed from (default: the message), so that handling
    the same message again after a crash finds the item instead of filing another.
    """
    problem = _text_problem(ctx, data.get("text", ""))
    if problem:
        return problem
    incoming = ctx.incoming
    source = source or message_key(incoming.platform, incoming.chat_id, incoming.message_id)
    item = ctx.assistant.feedback.by_source(source) if source else None
    if item is None and _over_limit(ctx):
        return ctx.reply("feedback_limit", limit=HOURLY_LIMIT)
    item = item or ctx.assistant.feedback.file(ctx.resident.id, data["kind"],
                                               data["text"].strip(), data.get("district"),
                                               bool(data.get("reply")), source)
    logger.info("feedback %s filed (%s)", item.reference, item.kind)
    replies = ctx.reply("feedback_received", reference=item.reference,
                        command=ctx.t("feedback_mine_command"))
    if item.kind == "fault":
        replies += ctx.reply("feedback_fault_reminder", url=CITY_FEEDBACK_URL)
    return replies + feedback_admin.notifications(ctx.assistant, item)


def _text_problem(ctx: "Context", text: str) -> list[Reply]:
    if not textnorm.normalise(text):
        return ctx.reply("feedback_empty")
    if len(text.strip()) > MAX_FEEDBACK_CHARS:
        return ctx.reply("feedback_too_long", limit=MAX_FEEDBACK_CHARS, length=len(text.strip()))
    return []


def _over_limit(ctx: "Context") -> bool:
    since = utcnow() - dt.timedelta(hours=1)
    return ctx.assistant.feedback.count_since(ctx.resident.id, since) >= HOURLY_LIMIT


# helpers ----------------------------------------------------------------

def _save(ctx: "Context", step: Step, data: dict) -> None:
    """Keep the step and answers so far, stamped: the form expires FORM_TIMEOUT after this."""
    data["saved_at"] = utcnow().isoformat()
    ctx.assistant.residents.set_flow(ctx.resident.id, FLOW, step.value, data)


def _timed_out(data: dict) -> bool:
    try:
        saved_at = dt.datetime.fromisoformat(data["saved_at"])
    except (KeyError, TypeError, ValueError):
        return True
    return utcnow() - saved_at > FORM_TIMEOUT


def _time_out(ctx: "Context") -> list[Reply]:
    ctx.assistant.residents.clear_flow(ctx.resident.id)
    return ctx.reply("feedback_timed_out", Choice(ctx.t("feedback_start_button"), "fb:start"),
                     minutes=int(FORM_TIMEOUT.total_seconds() // 60))


def _ask_kind(ctx: "Context", key: str) -> list[Reply]:
    choices = [Choice(ctx.t(f"feedback_kind_{kind}"), f"fb:k:{kind}") for kind in KINDS]
    return ctx.reply(key, *choices)


def _ask_district(ctx: "Context", data: dict) -> list[Reply]:
    if gazetteer_of(ctx.assistant) is None:  # no districts file: the question is skipped
        data["district"] = None
        return _ask_text(ctx, data)
    _save(ctx, Step.DISTRICT, data)
    return ctx.reply("feedback_ask_district", *_major_choices(ctx), _skip_choice(ctx))


def _ask_text(ctx: "Context", data: dict) -> list[Reply]:
    _save(ctx, Step.TEXT, data)
    return ctx.reply("feedback_ask_text", limit=MAX_FEEDBACK_CHARS)


def _ask_reply(ctx: "Context", key: str) -> list[Reply]:
    return ctx.reply(key, Choice(ctx.t("feedback_yes"), "fb:r:1"),
                     Choice(ctx.t("feedback_no"), "fb:r:0"))


def _confirm_choices(ctx: "Context") -> tuple[Choice, Choice]:
    return (Choice(ctx.t("feedback_send_button"), "fb:send"),
            Choice(ctx.t("feedback_cancel_button"), "fb:cancel"))


def _summary(ctx: "Context", data: dict) -> str:
    district = district_name(ctx.assistant, data.get("district"), ctx.language)
    return ctx.t("feedback_confirm", kind=ctx.t(f"feedback_kind_{data['kind']}"),
                 district=district or ctx.t("feedback_no_district"),
                 reply=ctx.t("feedback_yes" if data.get("reply") else "feedback_no"),
                 text=data["text"])


def _mine_line(ctx: "Context", item: FeedbackItem) -> str:
    line = ctx.t("feedback_mine_item", reference=item.reference,
                 date=local_date(ctx.assistant, item), kind=ctx.t(f"feedback_kind_{item.kind}"),
                 status=ctx.t(f"feedback_status_{item.status}"), text=shorten(item.text, 160))
    if item.answer_text:
        line += "\n" + ctx.t("feedback_mine_answer", answer=shorten(item.answer_text, 600))
    return line


def _major_choices(ctx: "Context") -> list[Choice]:
    gazetteer = gazetteer_of(ctx.assistant)
    return [_district_choice(ctx, d) for d in gazetteer.majors()] if gazetteer else []


def _district_choice(ctx: "Context", district: District) -> Choice:
    return Choice(district.name(ctx.language), f"fb:d:{district.id}")


def _skip_choice(ctx: "Context") -> Choice:
    return Choice(ctx.t("feedback_skip_button"), f"fb:d:{SKIP}")
