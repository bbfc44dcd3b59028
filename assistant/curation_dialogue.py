"""What the editors' guided dialogues share: who may go on with one, when it expires,
and the confirm buttons under a preview.

Dialogue steps and buttons skip the command table's role check, so they check `ROLE` here.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import TYPE_CHECKING

from . import answers
from .messages import Choice, Reply
from .store.residents import Flow, utcnow

if TYPE_CHECKING:
    from .context import Context

ROLE = "editor"
FLOW_TIMEOUT = dt.timedelta(minutes=60)


async def open_flow(ctx: "Context", name: str, text: str) -> Flow | list[Reply]:
    """The editor's open dialogue, or the reply when it is gone, expired or no longer allowed."""
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if ctx.incoming.group:  # the dialogue is private: group talk is not its answer
        return await answers.answer_question(ctx, text)
    if flow is None or flow.name != name or not ctx.has_role(ROLE):
        ctx.assistant.residents.clear_flow(ctx.resident.id)
        return await answers.answer_question(ctx, text)
    if timed_out(flow.data):
        ctx.assistant.residents.clear_flow(ctx.resident.id)
        return ctx.reply("admin_timed_out")
    return flow


def save_step(ctx: "Context", name: str, step: Enum, data: dict) -> None:
    """Keep the dialogue at `step`; the time saved starts its FLOW_TIMEOUT anew."""
    data["saved_at"] = utcnow().isoformat()
    ctx.assistant.residents.set_flow(ctx.resident.id, name, step.value, data)


def timed_out(data: dict) -> bool:
    try:
        return utcnow() - dt.datetime.fromisoformat(data["saved_at"]) > FLOW_TIMEOUT
    except (KeyError, TypeError, ValueError):
        return True


def confirm_choices(ctx: "Context", nonce: str) -> tuple[Choice, Choice]:
    return (Choice(ctx.t("admin_confirm_button"), f"ans:ok:{nonce}"),
            Choice(ctx.t("admin_cancel_button"), f"ans:no:{nonce}"))
