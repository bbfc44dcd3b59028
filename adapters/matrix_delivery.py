"""Sending into Matrix rooms: answers as m.notice, attachments as m.file, failures as the
core's RetryLater, RecipientGone and PermanentFailure."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any
from uuid import uuid4

from aiohttp import ClientError
from nio import (
    AsyncClient,
    ErrorResponse,
    LocalProtocolError,
    MatrixRoom,
    RoomSendResponse,
    SendRetryError,
    UploadResponse,
)

from adapters.matrix_format import file_content, mimetype_of, notice_content
from adapters.matrix_incoming import is_group
from assistant.messages import Reply
from assistant.platform import PermanentFailure, RecipientGone, RetryLater

logger = logging.getLogger(__name__)


class RoomSender:
    """Sends through one nio client. nio already retries a 429 a few times
    (max_limit_exceeded); a patient send keeps trying after that, others raise RetryLater."""

    def __init__(self, client: AsyncClient, patient_attempts: int = 10):
        self.client = client
        self.patient_attempts = patient_attempts

    async def send(self, room: MatrixRoom, reply: Reply, patient: bool = False) -> str:
        """The text as an m.notice, then the attachment as m.file; the last event id."""
        event_id = ""
        if reply.text or reply.choices:
            # In a group, answer as a reply to the question so the thread stays readable.
            quote = reply.reply_to if is_group(room) and not reply.chat_id else ""
            event_id = await self._deliver(room.room_id, notice_content(reply, quote), patient)
        if reply.attachment_name:
            content = await self._upload(room, reply)
            event_id = await self._deliver(room.room_id, content, patient)
        return event_id

    async def _deliver(self, room_id: str, content: dict[str, Any], patient: bool) -> str:
        """room_send with one transaction id for all attempts: the server drops a repeat."""
        tx_id = uuid4().hex
        attempts = self.patient_attempts if patient else 1
        for attempt in range(1, attempts + 1):
            outcome = await self._send_once(room_id, content, tx_id)
            if isinstance(outcome, str):
                return outcome
            if attempt == attempts or not isinstance(outcome, RetryLater):
                raise outcome
            logger.info("Matrix: send attempt %d held back; retrying in %.1f s", attempt,
                        outcome.after_seconds)
            await asyncio.sleep(outcome.after_seconds)
        raise AssertionError("unreachable")

    async def _send_once(self, room_id: str, content: dict[str, Any], tx_id: str) -> str | Exception:
        """The event id, or the core's exception for what went wrong."""
        try:
            response = await self.client.room_send(room_id, "m.room.message", content, tx_id,
                                                   ignore_unverified_devices=True)
        except LocalProtocolError as error:  # nio does not know the room
            return RecipientGone(str(error))
        except (TimeoutError, ClientError, SendRetryError) as error:
            return RetryLater(5.0, describe(error))
        if isinstance(response, RoomSendResponse):
            return str(response.event_id)
        return platform_error(response)

    async def _upload(self, room: MatrixRoom, reply: Reply) -> dict[str, Any]:
        """Upload the attachment (encrypted in an encrypted room); the m.file content for it."""
        data, name = reply.attachment, reply.attachment_name
        try:
            response, keys = await self.client.upload(
                io.BytesIO(data), content_type=mimetype_of(name), filename=name,
                encrypt=room.encrypted, filesize=len(data))
        except (TimeoutError, ClientError) as error:
            raise RetryLater(5.0, describe(error)) from error
        if not isinstance(response, UploadResponse):
            raise platform_error(response)
        return file_content(name, len(data), response.content_uri, keys)


def platform_error(response: ErrorResponse) -> Exception:
    """The core's view of a Matrix error: wait and retry, stop sending, or give up."""
    code = response.status_code or ""
    status = response.transport_response.status if response.transport_response else 0
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        return RetryLater((response.retry_after_ms or 5000) / 1000, "Matrix rate limit")
    if code == "M_FORBIDDEN" or status == 403:  # not in the room, or banned from it
        return RecipientGone(code or "forbidden")
    if status >= 500 or status == 401 or code in ("", "M_UNKNOWN", "M_UNKNOWN_TOKEN"):
        return RetryLater(5.0, f"Matrix {code or status}")
    return PermanentFailure(f"Matrix {code or status}")


def describe(error: Exception) -> str:
    """Type and error code only: an exception's text may quote a message."""
    code = getattr(error, "status_code", "")
    return f"{type(error).__name__} {code}".strip() if code else type(error).__name__
