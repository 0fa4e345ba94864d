"""`TaskRunner`: runs one `Task` at a time in a napari thread worker, with progress, status and cancel."""

from __future__ import annotations

from collections.abc import Callable

from magicgui.widgets import Label, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QProgressBar

from ..errors import SamedError
from ..tasks import Progress


def wrapped_label(value: str = "") -> Label:
    """A status line that wraps long messages instead of widening its dock."""
    label = Label(value=value)
    label.native.setWordWrap(True)
    return label


def report(exc: Exception) -> None:
    """Show a worker's error as a napari notification (user errors as they are, others with their type)."""
    show_error(str(exc) if isinstance(exc, SamedError) else f"{type(exc).__name__}: {exc}")


class TaskRunner:
    """The progress bar, status line and cancel button of a widget, and its one running worker.

    ``start`` runs a generator function that yields `Progress` (a `Task`) off the GUI thread; napari's activity
    panel shows it too. Errors become notifications; ``Cancel`` stops the task after its current step.
    """

    def __init__(self, on_step: Callable[[Progress], None] | None = None):
        self.worker = None
        self.on_step = on_step
        self._failed = False
        self.progress = QProgressBar()
        self.status = wrapped_label()
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def idle(self) -> bool:
        """True when no task runs; else False, telling the user to wait or cancel (every action's guard)."""
        if self.busy:
            show_info("busy: wait for the running task or cancel it")
        return not self.busy

    def start(self, run: Callable, total: int, desc: str, returned: Callable | None = None,
              finished: Callable[[], None] | None = None) -> None:
        self.progress.setRange(0, 0)  # busy (no count) until the task's first step: loading a model, embedding
        self.status.value = desc
        self._failed = False
        self.cancel_button.enabled = True
        self.worker = create_worker(run, _progress={"total": total, "desc": desc}, _start_thread=False,
                                    _ignore_errors=True)
        self.worker.yielded.connect(self._on_step)
        self.worker.errored.connect(self._on_error)
        if returned is not None:
            self.worker.returned.connect(returned)
        self.worker.finished.connect(self._on_finished)
        if finished is not None:
            self.worker.finished.connect(finished)
        self.worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _on_step(self, step: Progress) -> None:
        self.progress.setRange(0, max(step.total, 1))
        self.progress.setValue(step.done)
        self.status.value = step.message
        if self.on_step is not None:
            self.on_step(step)

    def _on_error(self, exc: Exception) -> None:
        self._failed = True
        self.status.value = "failed"
        report(exc)

    def _on_finished(self) -> None:
        """The bar ends full when the task ended early by itself (a propagation that stopped); a cancelled or
        failed task says so."""
        cancelled = self.worker.abort_requested
        self.worker = None
        self.cancel_button.enabled = False
        if self.progress.maximum() == 0:  # still busy: the task yielded no step
            self.progress.setRange(0, 1)
        if cancelled:
            self.status.value = f"cancelled ({self.status.value})"
        elif not self._failed:
            self.progress.setValue(self.progress.maximum())
