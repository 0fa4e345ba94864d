"""The headless state and decisions behind the Segment widget: the session of one image (`InteractiveSession`), its
bounded undo history (`History`) and what a prompt does (`controller`)."""

from .history import UNDO_LIMIT_BYTES, History
from .session import InteractiveSession

__all__ = ["UNDO_LIMIT_BYTES", "History", "InteractiveSession"]
