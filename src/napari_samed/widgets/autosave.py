"""`AutoSave`: session files written in the background, a short while after the last change."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, QTimer, Signal

from ..io.session import SavedSession, save_session


class AutoSave(QObject):
    """Saves sessions off the GUI thread, one file at a time. ``request`` marks a session changed; ``delay_ms``
    after the last request its snapshot is taken (on the GUI thread: references, no copies) and written by the
    writer thread."""

    failed = Signal(str)

    def __init__(self, delay_ms: int = 300):
        super().__init__()
        self._pending: dict[Path, Callable[[], SavedSession | None]] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-samed-autosave")
        self._last: Future | None = None
        self._timer = QTimer(self, singleShot=True, interval=delay_ms)
        self._timer.timeout.connect(self._write)
        self.failed.connect(show_error)

    def request(self, path: Path, snapshot: Callable[[], SavedSession | None]) -> None:
        """Save ``snapshot()`` (nothing when it gives None) to ``path`` soon."""
        self._pending[path] = snapshot
        self._timer.start()

    def flush(self) -> None:
        """Write what is pending now and wait until every file is written."""
        self._timer.stop()
        self._write()
        if self._last is not None:
            self._last.exception()

    def _write(self) -> None:
        pending, self._pending = self._pending, {}
        for path, snapshot in pending.items():
            state = snapshot()
            if state is None:
                continue
            self._last = self._writer.submit(save_session, path, state)
            self._last.add_done_callback(lambda done, path=path: self._report(done, path))

    def _report(self, done: Future, path: Path) -> None:
        if done.exception() is not None:  # on the writer's thread: the signal carries it to the GUI thread
            self.failed.emit(f"the session could not be saved to {path}: {done.exception()}")
