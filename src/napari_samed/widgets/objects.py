"""`ObjectTable`: the Segment widget's object list (colour, label, slices covered, show, lock)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

SHOW, LOCK = 2, 3


class ObjectTable(QTableWidget):
    """One row per object; the selected row is the current object. Selecting a row, or ticking its show or lock
    box, calls ``on_select(label)``, ``on_show(label, shown)`` or ``on_lock(label, locked)``."""

    def __init__(self, on_select: Callable[[int], None], on_show: Callable[[int, bool], None],
                 on_lock: Callable[[int, bool], None]):
        super().__init__(0, 4)
        self.on_select, self.on_show, self.on_lock = on_select, on_show, on_lock
        self.labels: list[int] = []
        self.setHorizontalHeaderLabels(["object", "slices", "show", "lock"])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMinimumHeight(90)
        self.setMaximumHeight(160)
        self.setToolTip("select an object to edit it: prompts you add are its, and only it is segmented again. "
                        "show: its labels and prompts; lock: never segmented again or overwritten, and its voxels "
                        "are negative prompts for the other objects")
        self.itemSelectionChanged.connect(self._selected)
        self.itemChanged.connect(self._ticked)

    def show_objects(self, objects: dict[int, tuple[int, int, int]], current: int,
                     color: Callable[[int], np.ndarray], hidden: Collection[int], locked: Collection[int]) -> None:
        """Rebuild the rows from `InteractiveSession.objects()`; select ``current``."""
        self.blockSignals(True)
        self.labels = list(objects)
        self.setRowCount(len(objects))
        for row, (label, (first, last, count)) in enumerate(objects.items()):
            name = QTableWidgetItem(f"{label}")
            name.setData(Qt.ItemDataRole.DecorationRole, QColor.fromRgbF(*map(float, color(label))))
            span = QTableWidgetItem(f"{first}-{last} ({count})" if count else "empty")
            self.setItem(row, 0, name)
            self.setItem(row, 1, span)
            for column, on in ((SHOW, label not in hidden), (LOCK, label in locked)):
                box = QTableWidgetItem()
                box.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                box.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                self.setItem(row, column, box)
        if current in self.labels:
            self.selectRow(self.labels.index(current))
        self.blockSignals(False)

    def tick(self, label: int, column: int, on: bool) -> None:
        """Tick or clear a row's show (`SHOW`) or lock (`LOCK`) box, as a user's click does."""
        self.item(self.labels.index(label), column).setCheckState(Qt.CheckState.Checked if on else
                                                                  Qt.CheckState.Unchecked)

    def _selected(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) == 1:
            self.on_select(self.labels[rows.pop()])

    def _ticked(self, item: QTableWidgetItem) -> None:
        if item.column() in (SHOW, LOCK):
            on = item.checkState() == Qt.CheckState.Checked
            (self.on_show if item.column() == SHOW else self.on_lock)(self.labels[item.row()], on)
