"""Imports every table so that `SQLModel.metadata` knows the whole schema."""

from .residents import ConversationState, Resident  # noqa: F401
