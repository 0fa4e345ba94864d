"""The Compare widget's per-slice view: the DSC curves with the current slice marked (`DscPlot`), and the current
slice's metrics scored off the GUI thread (`SliceScores`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from qtpy.QtCore import QObject, Signal

from ..evaluation.compare import slice_table
from .plots import ThemedPlot
from .tasks import report


class DscPlot(ThemedPlot):
    """Per-slice DSC of each method, with the current slice marked. The curves are drawn once per comparison; a
    slice step moves the marker alone (blitted over the saved drawing of the axes)."""

    def __init__(self, viewer):
        super().__init__(viewer)
        self.marker = None
        self._background = None
        self.mpl_connect("draw_event", self._drawn)

    def show_curves(self, curves: dict[str, np.ndarray], z: int) -> None:
        self.axes.clear()
        self._background = None
        for name, dsc in curves.items():
            self.axes.plot(np.arange(len(dsc)), dsc, marker=".", label=name)
        self.marker = self.axes.axvline(z, color="grey", lw=0.8, animated=True)
        self.axes.set_xlabel("slice")
        self.axes.set_ylabel("DSC")
        self.axes.set_ylim(-0.02, 1.02)
        if curves:
            self.axes.legend(fontsize=6)
        self.style()

    def _drawn(self, _event) -> None:
        """After a whole drawing: keep it without the marker, then draw the marker."""
        self._background = self.copy_from_bbox(self.axes.bbox)
        if self.marker is not None:
            self.axes.draw_artist(self.marker)

    def move_marker(self, z: int) -> None:
        """Mark slice ``z``: the saved drawing and the marker over it, or a whole drawing when none is saved."""
        if self.marker is None:
            return
        self.marker.set_xdata([z, z])
        if self._background is None:
            if self.isVisible():
                self.draw_idle()
            return
        self.restore_region(self._background)
        self.axes.draw_artist(self.marker)
        self.update()  # painted from the buffer with the next events, not at once (blit repaints now)


class SliceScores(QObject):
    """Scores one slice at a time in a thread (`slice_table`) and hands the rows to ``show`` on the GUI thread; a
    slice asked for while another is scored is scored next (only the latest), so a fast scroll never queues work.
    A plain thread, not a Qt worker, and a child of the widget (``parent``): a widget closed while it scores is
    simply not told."""

    _scored = Signal(object)

    def __init__(self, show: Callable[[list[dict]], None], parent: QObject):
        super().__init__(parent)
        self.show = show
        self.busy = False
        self._next: tuple | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-samed-slice-scores")
        self._scored.connect(self._done)

    def request(self, *args) -> None:
        """Score ``slice_table(*args)`` (results, reference, spacing, tolerance, z) soon."""
        self._next = args
        if not self.busy:
            self._start()

    def _start(self) -> None:
        args, self._next = self._next, None
        self.busy = True
        self._thread.submit(self._score, args)

    def _score(self, args: tuple) -> None:
        try:
            outcome = slice_table(*args)
        except Exception as exc:  # told on the GUI thread
            outcome = exc
        try:
            self._scored.emit(outcome)
        except RuntimeError:  # the widget is gone
            pass

    def _done(self, outcome) -> None:
        self.busy = False
        if isinstance(outcome, Exception):
            report(outcome)
        else:
            self.show(outcome)
        if self._next is not None:
            self._start()
