"""Imports every table so that `SQLModel.metadata` knows the whole schema."""

from .residents import ConversationState, Resident  # noqa: F401
from .feedback import FeedbackCounter, FeedbackItem  # noqa: F401
from .news import DeliveryPreference, FeedEntry, NewsDraft, NewsItem, Subscription  # noqa: F401
from . import outbox, updates  # noqa: F401  (OutboxRow, ProcessedUpdate)
from .admin import AnswerRevision, AuditEntry, QuestionCount, Role, UnansweredQuestion  # noqa: F401
from ..joblock import JobRun  # noqa: F401
