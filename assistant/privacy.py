"""Residents' privacy by chat: what is stored and why (/privacy), a copy (/mydata), deletion (/forget).

Personal data sits in a few tables keyed by the resident's id; `PersonalData` reads
and erases them together, so /mydata shows exactly what /forget deletes. Feedback
outlives its sender only anonymously (resident_id NULL), unless they delete it too.
Private data is never sent to a group chat.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from .basics import LANGUAGE_NAMES
from .commands import Command, private_only
from .feedback_admin import shorten
from .messages import Choice, Reply
from .store.admin import Role
from .store.db import Database
from .store.feedback import FeedbackItem
from .store.news import DeliveryPreference, NewsDraft, Subscription
from .store.outbox import OutboxRow
from .store.residents import ConversationState, Resident, utcnow
from .store.updates import Updates

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

ATTACHMENT_NAME = "mydata.json"
FORGET_TTL = dt.timedelta(minutes=15)  # an old confirmation button deletes nothing
SHOWN_CHARS = 300  # feedback texts in the readable copy; the attachment has them whole
REFUSAL = "privacy_private_only"  # what a group hears instead of anyone's own data


@dataclass(frozen=True)
class Collected:
    """Every stored row about one resident (read in one session)."""

    resident: Resident
    subscriptions: list[Subscription]
    preference: DeliveryPreference | None
    feedback: list[FeedbackItem]
    state: ConversationState | None
    queued: dict[str, int]
    drafts: list[NewsDraft]
    roles: list[Role]


class PersonalData:
    """Reads and erases everything that holds one resident's identity."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self, resident_id: int) -> Collected | None:
        with self.db.session() as session:
            resident = session.get(Resident, resident_id)
            if resident is None:
                return None
            queued = session.exec(select(OutboxRow.status, func.count()).where(
                OutboxRow.resident_id == resident_id).group_by(OutboxRow.status)).all()
            return Collected(resident, _rows(session, Subscription, resident_id),
                             session.get(DeliveryPreference, resident_id),
                             _rows(session, FeedbackItem, resident_id),
                             session.get(ConversationState, resident_id), dict(queued),
                             _rows(session, NewsDraft, resident_id),
                             list(session.exec(select(Role).where(
                                 Role.platform == resident.platform,
                                 Role.platform_id == resident.platform_id)).all()))

    def erase(self, resident_id: int, delete_feedback: bool) -> int:
        """Delete the resident and every row naming them, in one transaction.

        Feedback is unlinked (or deleted when asked); returns how many items that touched.
        Their updates still waiting to be handled are dropped: they hold the platform id.
        """
        with self.db.session() as session:
            resident = session.get(Resident, resident_id)
            if resident is None:
                return 0
            own = col(FeedbackItem.resident_id) == resident_id
            touched = (session.exec(delete(FeedbackItem).where(own)) if delete_feedback else
                       session.exec(update(FeedbackItem).where(own).values(resident_id=None,
                                                                           source_key=None)))
            Updates.forget_sender(session, resident.platform, resident.platform_id)
            session.exec(delete(OutboxRow).where(or_(  # rows queued by chat id alone count too
                col(OutboxRow.resident_id) == resident_id,
                col(OutboxRow.resident_id).is_(None) & (col(OutboxRow.platform) == resident.platform)
                & col(OutboxRow.chat_id).in_([resident.chat_id, resident.platform_id]))))
            for model in (Subscription, NewsDraft, DeliveryPreference, ConversationState):
                session.exec(delete(model).where(col(model.resident_id) == resident_id))
            session.delete(resident)
            return touched.rowcount or 0


def _rows(session: Session, model: Any, resident_id: int) -> list[Any]:
    return list(session.exec(select(model).where(model.resident_id == resident_id)
                             .order_by(col(model.id))).all())


def register(assistant: "Assistant") -> None:
    setattr(assistant, "personal_data", PersonalData(assistant.db))
    table = assistant.commands
    table.add(Command("privacy", privacy, "privacy_help",
                      aliases=("tietosuoja", "integritet", "dataskydd")))
    table.add(Command("mydata", private_only(my_data, REFUSAL), "privacy_help_mydata",
                      aliases=("omattiedot", "minadata", "minauppgifter")))
    table.add(Command("forget", private_only(forget, REFUSAL), "privacy_help_forget",
                      aliases=("unohda", "glom", "glöm")))
    table.on_choice("forget", private_only(on_forget_choice, REFUSAL))


def personal_data(assistant: "Assistant") -> PersonalData:
    return getattr(assistant, "personal_data")


# commands ---------------------------------------------------------------

async def privacy(ctx: "Context", args: str) -> list[Reply]:
    """What is stored, why and for how long (nothing personal: fine in a group too)."""
    return ctx.reply("privacy_statement", days=ctx.assistant.settings.retention_days)


async def my_data(ctx: "Context", args: str) -> list[Reply]:
    """Everything stored about the resident: a readable message plus the same as JSON."""
    collected = personal_data(ctx.assistant).collect(_resident_id(ctx))
    if collected is None:  # deleted by a simultaneous /forget
        return ctx.reply("internal_error")
    document = json.dumps(as_json(ctx, collected), ensure_ascii=False, indent=2)
    logger.info("personal data copy sent (%d bytes)", len(document))
    return [Reply(render(ctx, collected), reply_to=ctx.incoming.message_id,
                  attachment_name=ATTACHMENT_NAME, attachment=document.encode("utf-8"))]


async def forget(ctx: "Context", args: str) -> list[Reply]:
    """Ask first: confirm (first button), also delete feedback (second), cancel (third)."""
    stamp = int(utcnow().timestamp())
    return ctx.reply("privacy_forget_confirm",
                     Choice(ctx.t("privacy_forget_button_yes"), f"forget:yes:{stamp}"),
                     Choice(ctx.t("privacy_forget_button_all"), f"forget:all:{stamp}"),
                     Choice(ctx.t("privacy_forget_button_no"), "forget:no"))


async def on_forget_choice(ctx: "Context", argument: str) -> list[Reply]:
    """Buttons `forget:yes:<stamp>`, `forget:all:<stamp>`, `forget:no`."""
    action, _, stamp = argument.partition(":")
    if action == "no":
        return ctx.reply("privacy_forget_cancelled")
    if action not in ("yes", "all") or not stamp.isdigit():
        return ctx.reply("choice_expired")
    issued = dt.datetime.fromtimestamp(int(stamp), dt.timezone.utc)
    if not dt.timedelta(minutes=-1) <= utcnow() - issued <= FORGET_TTL:
        return ctx.reply("privacy_forget_expired")
    everything = action == "all"
    count = personal_data(ctx.assistant).erase(_resident_id(ctx), delete_feedback=everything)
    logger.info("a %s resident deleted their data (%d feedback items %s)", ctx.incoming.platform,
                count, "deleted" if everything else "made anonymous")
    return ctx.reply("privacy_forget_done_all" if everything else "privacy_forget_done",
                     count=count)


def _resident_id(ctx: "Context") -> int:
    return ctx.resident.id or 0  # set once the resident is stored, which context_for does


# the copy ---------------------------------------------------------------

def render(ctx: "Context", data: Collected) -> str:
    """The readable copy, in the resident's language (long texts shortened)."""
    sections = [ctx.t("privacy_mydata_intro"), _profile(ctx, data.resident),
                _news(ctx, data), _feedback(ctx, data.feedback), _form(ctx, data.state)]
    extra = []
    if sum(data.queued.values()):
        extra.append(ctx.t("privacy_mydata_queued", count=sum(data.queued.values())))
    if data.drafts:
        extra.append(ctx.t("privacy_mydata_drafts", count=len(data.drafts)))
    sections += ["\n".join(extra)] if extra else []
    sections.append(ctx.t("privacy_mydata_outro", file=ATTACHMENT_NAME))
    return "\n\n".join(sections)


def _profile(ctx: "Context", resident: Resident) -> str:
    return ctx.t("privacy_mydata_profile", platform=resident.platform,
                 platform_id=resident.platform_id,
                 language=LANGUAGE_NAMES.get(resident.language, resident.language),
                 chosen=ctx.t("privacy_language_chosen" if resident.language_chosen
                              else "privacy_language_guessed"),
                 first_seen=_date(ctx, resident.first_seen),
                 active=ctx.t("privacy_yes" if resident.active else "privacy_no"))


def _news(ctx: "Context", data: Collected) -> str:
    if not data.subscriptions:
        return ctx.t("privacy_mydata_no_subscriptions")
    names = ", ".join(_district(ctx, s.district_id) for s in data.subscriptions)
    hour = data.preference.digest_hour if data.preference else None
    mode = (ctx.t("privacy_mydata_delivery_instant") if hour is None
            else ctx.t("privacy_mydata_delivery_digest", hour=hour))
    return ctx.t("privacy_mydata_subscriptions", districts=names) + "\n" + mode


def _feedback(ctx: "Context", items: list[FeedbackItem]) -> str:
    if not items:
        return ctx.t("privacy_mydata_no_feedback")
    lines = [ctx.t("privacy_mydata_feedback_intro", count=len(items))]
    for item in items:
        lines.append(ctx.t("privacy_mydata_feedback_item", reference=item.reference,
                           date=_date(ctx, item.created_at),
                           status=ctx.t(f"feedback_status_{item.status}"),
                           text=shorten(item.text, SHOWN_CHARS)))
        if item.answer_text:
            lines.append(ctx.t("privacy_mydata_feedback_answer",
                               answer=shorten(item.answer_text, SHOWN_CHARS)))
    return "\n".join(lines)


def _form(ctx: "Context", state: ConversationState | None) -> str:
    if state is None or not state.flow:
        return ctx.t("privacy_mydata_no_form")
    key = f"privacy_form_{state.flow}"
    name = ctx.t(key) if key in ctx.assistant.texts.keys() else state.flow
    return ctx.t("privacy_mydata_form", form=name, date=_date(ctx, state.updated_at))


def as_json(ctx: "Context", data: Collected) -> dict[str, Any]:
    """The complete copy: every stored field of every row about the resident."""
    r, preference, state = data.resident, data.preference, data.state
    return {
        "generated_at": _iso(utcnow()),
        "profile": {"platform": r.platform, "platform_id": r.platform_id, "chat_id": r.chat_id,
                    "language": r.language, "language_chosen": r.language_chosen,
                    "active": r.active, "first_seen": _iso(r.first_seen)},
        "subscriptions": [{"district_id": s.district_id, "district": _district(ctx, s.district_id),
                           "since": _iso(s.created_at)} for s in data.subscriptions],
        "delivery": {"digest_hour": preference.digest_hour if preference else None,
                     "last_digest_at": _iso(preference.last_digest_at) if preference else None},
        "feedback": [{"reference": f.reference, "kind": f.kind, "district_id": f.district_id,
                      "status": f.status, "reply_wanted": f.reply_wanted, "text": f.text,
                      "created_at": _iso(f.created_at), "updated_at": _iso(f.updated_at),
                      "answer": f.answer_text, "answered_at": _iso(f.answered_at)}
                     for f in data.feedback],
        "unfinished_form": ({"name": state.flow, "step": state.step, "data": json.loads(state.data),
                             "updated_at": _iso(state.updated_at)}
                            if state is not None and state.flow else None),
        "offered_choices": json.loads(state.choices) if state is not None else [],
        "queued_messages": data.queued,
        "news_drafts": [{"district_id": d.district_id, "text": d.text, "status": d.status,
                         "created_at": _iso(d.created_at)} for d in data.drafts],
        "roles": [{"role": g.role, "district_id": g.district_id, "granted_at": _iso(g.granted_at)}
                  for g in data.roles],
    }


def _district(ctx: "Context", district_id: str) -> str:
    desk = getattr(ctx.assistant, "news_desk", None)
    return desk.label(district_id, ctx.language) if desk is not None else district_id


def _date(ctx: "Context", when: dt.datetime) -> str:
    local = _aware(when).astimezone(ZoneInfo(ctx.assistant.settings.timezone))
    return f"{local.day}.{local.month}.{local.year}"


def _iso(when: dt.datetime | None) -> str | None:
    return _aware(when).isoformat() if when is not None else None


def _aware(when: dt.datetime) -> dt.datetime:
    """SQLite may hand back naive UTC times; PostgreSQL aware ones."""
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
