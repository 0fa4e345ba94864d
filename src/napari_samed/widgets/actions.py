"""The Segment widget's keys as napari actions of the viewer: they work whatever layer is selected, and napari's
preferences (Keyboard shortcuts, "Viewer key bindings") list them and can rebind them."""

from __future__ import annotations

from collections.abc import Callable

from napari.components import ViewerModel
from napari.settings import get_settings
from napari.utils.action_manager import action_manager
from napari.utils.notifications import show_info

#: action name: (default key, description)
ACTIONS = {
    "napari-samed:segment": ("Shift-S", "segment the current slice (the object in 3D with the 3D box ticked)"),
    "napari-samed:propagate": ("Shift-P", "propagate the current object through the volume"),
    "napari-samed:new_object": ("Shift-N", "start a new object (next label value)"),
    "napari-samed:undo": ("Shift-U", "undo the last result"),
    "napari-samed:toggle_polarity": ("T", "toggle new points between positive (green) and negative (red)"),
}

#: A widget's operation, called with the widget.
Command = Callable[[object], None]


def keys(name: str) -> list[str]:
    """The keys of action ``name``: the user's from napari's settings, else its default."""
    chosen = get_settings().shortcuts.shortcuts.get(name)
    return [str(k) for k in chosen] if chosen is not None else [ACTIONS[name][0]]


def register(commands: dict[str, Command], widget_of: Callable[[ViewerModel], object | None]) -> None:
    """Register the actions with napari once (when the widget's module loads), bound to the viewer: action ``name``
    runs ``commands[name](widget_of(viewer))``; with no widget docked (None) the key says how to open it. Binds
    the default keys the user has not changed."""
    def action(command: Command) -> Callable[[ViewerModel], None]:
        def run(viewer: ViewerModel) -> None:
            widget = widget_of(viewer)
            if widget is None:
                show_info("open the Segment widget first: Plugins > napari-samed > Segment")
            else:
                command(widget)
        return run

    for name, command in commands.items():
        key, description = ACTIONS[name]
        action_manager.register_action(name, action(command), f"napari-samed: {description}", ViewerModel)
        if name not in get_settings().shortcuts.shortcuts:
            action_manager.bind_shortcut(name, key)


def bind_layer(layer, commands: dict[str, Command], widget) -> None:
    """Bind the actions' keys on one of ``widget``'s own layers, so that they win over the layer type's keys
    (napari's Shapes layer binds Shift-P)."""
    for name, command in commands.items():
        for key in keys(name):
            layer.bind_key(key, lambda _layer, c=command: c(widget), overwrite=True)


def tooltip(name: str) -> str:
    """A button's tooltip: what its action does, and its key."""
    description = ACTIONS[name][1]
    return f"{description[0].upper()}{description[1:]} ({' or '.join(keys(name))})"
