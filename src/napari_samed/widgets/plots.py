"""Small matplotlib plots docked in the widgets, drawn in the colours of napari's theme."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.theme import get_theme


class ThemedPlot(FigureCanvasQTAgg):
    """One axes on a canvas whose background, text and frame follow the viewer's theme, also when it changes."""

    def __init__(self, viewer):
        super().__init__(Figure(figsize=(3, 1.8), tight_layout=True))
        self.viewer = viewer
        self.axes = self.figure.add_subplot()
        viewer.events.theme.connect(self.style)
        style = self.style
        self.destroyed.connect(lambda *_: viewer.events.theme.disconnect(style))
        self.style()

    def style(self, _event=None) -> None:
        """Colour the figure and axes after the current theme (call again after ``axes.clear()``)."""
        theme = get_theme(self.viewer.theme)
        background, text = theme.background.as_hex(), theme.text.as_hex()
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(text)
        self.axes.tick_params(colors=text, labelcolor=text)
        self.axes.xaxis.label.set_color(text)
        self.axes.yaxis.label.set_color(text)
        if self.isVisible():  # a hidden canvas draws when it is shown
            self.draw_idle()


class LossPlot(ThemedPlot):
    """The live training curve: the loss at every step, the DSC on the labelled slices at every check, and where
    and why training stopped."""

    def __init__(self, viewer):
        super().__init__(viewer)
        self.axes.set_xlabel("step")
        self.axes.set_ylabel("loss, DSC")
        (self.line,) = self.axes.plot([], [], label="loss")
        (self.fit_line,) = self.axes.plot([], [], "o-", markersize=3, label="labelled slices' DSC")
        self.stop_line = self.axes.axvline(0, linestyle=":", visible=False)
        self.axes.legend(loc="upper right", fontsize="x-small", frameon=False)
        self.losses: list[float] = []
        self.checks: list[tuple[int, float]] = []
        self.style()

    def style(self, _event=None) -> None:
        """The theme's colours, also for the legend and the title (drawn with the next idle draw)."""
        super().style()
        text = self.axes.xaxis.label.get_color()
        if self.axes.get_legend() is not None:
            for label in self.axes.get_legend().get_texts():
                label.set_color(text)
        self.axes.title.set_color(text)

    def reset(self) -> None:
        self.losses, self.checks = [], []
        self.stop_line.set_visible(False)
        self.axes.set_title("")
        self._redraw()

    def add(self, loss: float, score: float | None = None) -> None:
        self.losses.append(loss)
        if score is not None:
            self.checks.append((len(self.losses), score))
        self._redraw()

    def stopped(self, reason: str) -> None:
        """Mark the last step and say why training stopped there."""
        self.stop_line.set_xdata([len(self.losses)] * 2)
        self.stop_line.set_visible(True)
        self.axes.set_title(reason, fontsize="x-small", wrap=True)
        self.style()
        self._redraw()

    def _redraw(self) -> None:
        self.line.set_data(np.arange(1, len(self.losses) + 1), self.losses)
        self.fit_line.set_data([s for s, _ in self.checks], [v for _, v in self.checks])
        self.axes.relim()
        self.axes.autoscale_view()
        self.draw_idle()
