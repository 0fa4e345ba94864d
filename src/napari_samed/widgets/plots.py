"""Small matplotlib plots docked in the widgets, drawn in the colours of napari's theme."""

from __future__ import annotations

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
