"""`SessionFiles`: each image's session saved to its file soon after its state changes, and restored when the image
is chosen again. Only a changed state is written; the labels are read by the writer thread, never copied on the
GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error

from ...errors import SamedError
from ...io.session import SavedSession, load_session, session_path, set_aside
from ..autosave import AutoSave
from ..prompt_layers import saved_prompts
from .state import ImageState


class SessionFiles:
    """Saves and restores the sessions of the images of one widget. ``choices()`` gives the form's choices that a
    file keeps."""

    def __init__(self, choices: Callable[[], dict]):
        self.choices = choices
        self.autosave = AutoSave()

    def path(self, image: Image, state: ImageState) -> Path:
        """Where the image's session is saved (`session_path`, found once per image)."""
        if state.file is None:
            state.file = session_path(image.source.path, image.name, image.data)
        return state.file

    def changed(self, image: Image, state: ImageState) -> None:
        """Save the session soon when its state differs from the last one saved (and it holds work, or replaces a
        saved file)."""
        session = state.session
        signature = (session.generation, state.prompt_edits, session.current_label, tuple(sorted(session.locked)),
                     tuple(sorted(session.hidden)), tuple(self.choices().items()))
        if signature == state.saved:
            return
        state.saved = signature
        path = self.path(image, state)
        prompts = [layer for layer in (state.points, state.boxes) if layer is not None]
        voxels = any(count for *_, count in session.objects().values())
        if voxels or any(len(layer.data) for layer in prompts) or path.is_file():
            self.autosave.request(path, lambda: self.snapshot(state))

    def snapshot(self, state: ImageState) -> SavedSession:
        """The session as its file keeps it. The labels are the session's own array, not a copy: the writer reads
        them, and a change while it does requests another save, so the last file written is whole."""
        session = state.session
        return SavedSession(session.labels, **saved_prompts(state.points, state.boxes),
                            current=session.current_label, locked=sorted(session.locked),
                            hidden=sorted(session.hidden), settings=self.choices())

    def restore(self, image: Image, state: ImageState, put: Callable[[SavedSession], None]) -> str | None:
        """``put`` the image's saved session, if it has one, in its new state; what to tell the user. A file that
        cannot be used (its checks fail, or napari refuses it) is renamed, never overwritten, with one error
        message, and an empty session with the form's choices is put in its place."""
        path = self.path(image, state)
        if not path.is_file():
            return None
        try:
            saved = load_session(path, image.data.shape)
        except SamedError as exc:
            self.set_aside(path, str(exc))
            return None
        choices = self.choices()
        try:
            put(saved)
        except Exception as exc:  # a file that passed the checks yet napari refuses: back to a new session
            self.set_aside(path, " ".join(f"the session file {path} cannot be used ({type(exc).__name__}: "
                                          f"{exc})".split()))
            with state.boxes.events.data.blocker():
                state.boxes.data, state.boxes.features = [], {"label": np.empty(0, int)}
            put(SavedSession(np.zeros(image.data.shape, np.uint16), settings=choices))
            return None
        return f"restored the saved session ({len(state.session.objects())} objects) from {path.name}"

    @staticmethod
    def set_aside(path: Path, problem: str) -> None:
        """Tell the user once why a session file is not used, and rename it so that a new session keeps it."""
        try:
            show_error(f"{problem}. It was renamed {set_aside(path).name}; a new session starts.")
        except OSError as exc:
            show_error(f"{problem}. It could not be renamed ({exc}); a new session starts.")
