"""The Segment widget: prompt layers in, a Labels layer out, all compute in napari thread workers.

It reads the image's prompt layers into `Prompts`, lets the controller (`interactive.controller.plan`) decide what
they do, runs that in a worker and applies the result. Opening it imports no model code (torch): a thread does
(`import_model_code`), so napari does not freeze.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ...errors import SamedError
from ...interactive import InteractiveSession
from ...interactive.controller import Request, plan
from .. import actions
from ..common import chosen_volume
from ..model_code import import_model_code, interactive_use, keep_triton_out
from ..tasks import TaskRunner
from .form import SegmentForm
from .layers import ImageLayers, give_box_objects, read_prompts
from .persistence import SessionFiles
from .styling import ObjectColors

if TYPE_CHECKING:
    import napari

FIRST_STEP = "Draw a box around the object (or click it in the points layer): it is segmented at once"


class SegmentWidget(SegmentForm):
    """Interactive zero-shot segmentation of the chosen image with a SAM-family model."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, cache_dir: str | None = None):
        super().__init__(napari_viewer, TaskRunner(on_step=self._show_partial), self.select_object,
                         self.show_object, self.lock_object)
        self.viewer = napari_viewer
        self.colors = ObjectColors()
        self.images = ImageLayers(napari_viewer, cache_dir, self.colors.colormap, self._on_prompts,
                                  self.select_object, self._restyle,
                                  lambda layer: actions.bind_layer(layer, COMMANDS, self))
        self.files = SessionFiles(self.choices)
        self._pending_auto = False
        self._running: Image | None = None  # the image of the running task, while it may show partial results
        self._amend = False  # a partial result of the running task is applied: its result amends that undo step
        threading.Thread(target=import_model_code, name="napari-samed-import").start()
        for button, command in ((self.segment_button, self.segment_slice), (self.propagate_button, self.propagate),
                                (self.new_button, self.new_object), (self.undo_button, self.undo),
                                (self.delete_button, self.delete_object), (self.embed_button, self.embed)):
            button.clicked.connect(command)
        self.image.changed.connect(self._on_image)
        self.viewer.layers.events.inserted.connect(self.refresh_images)
        self.viewer.layers.events.removed.connect(self.refresh_images)
        self.viewer.layers.events.removed.connect(self._forget)
        self.refresh_images()

    @property
    def sessions(self) -> dict[Image, InteractiveSession]:
        return {image: state.session for image, state in self.images.states.items()}

    def session(self, image: Image) -> InteractiveSession:
        return self.images.state(image).session

    def prompt_layers(self, image: Image):
        return self.images.prompt_layers(image)

    def result_layer(self, image: Image):
        return self.images.result_layer(image)

    # -- layers --------------------------------------------------------------------------------------------
    def _forget(self, event) -> None:
        """A layer was removed: write a pending save, then drop what the widget held of it."""
        self.files.autosave.flush()
        self.images.forget(event.value)
        if event.value is self._running:
            self._running = None

    def _on_image(self, layer: Image | None) -> None:
        """A 3D image chosen: its result and prompt layers (the prompts on top), the boxes layer selected with the
        rectangle tool, its saved session restored, and a hint."""
        if layer is not None and layer.ndim == 3 and not layer.rgb:
            fresh = layer not in self.images.states
            self.result_layer(layer)  # now, not with the first result: napari's first Labels layer takes ~0.4 s
            _, boxes = self.prompt_layers(layer)
            self.viewer.layers.selection.active = boxes
            boxes.mode = "add_rectangle"
            restored = fresh and self.files.restore(layer, self.images.state(layer),
                                                    lambda saved: self._put_saved(layer, saved))
            self.status.value = restored or FIRST_STEP
            self._restyle(layer)

    def _put_saved(self, image: Image, saved) -> None:
        """Put a saved session's labels, prompts, objects and choices in the image's new session, as no undo step."""
        self.images.put_saved(image, saved)
        self.restore_choices(saved.settings)
        self._show(image)

    def current_slice(self, image: Image) -> int:
        return int(round(image.world_to_data(self.viewer.dims.point)[0]))

    def _image_or_report(self) -> Image | None:
        try:
            return chosen_volume(self.image, "the Segment widget")
        except SamedError as exc:
            show_error(str(exc))
            return None

    # -- actions -------------------------------------------------------------------------------------------
    def segment_slice(self) -> None:
        """Segment the current object from the current slice's prompts (`plan`): in 3D with the 3D toggle on, else
        the slice; several boxes together with a co-trained decoder; clicks in 3D with a ProMISe model."""
        self._start("segment")

    def propagate(self) -> None:
        """Propagate the current object (its mask, else the box on this slice) through the volume."""
        self._start("propagate")

    def embed(self) -> None:
        """Embed the whole volume, the current slice first."""
        self._start("embed")

    def new_object(self) -> None:
        """Start the next object; the earlier objects' prompts stay theirs."""
        image = self._image_or_report()
        if image is not None:
            self.select_object(self.session(image).new_object(), image)

    def select_object(self, label: int, image: Image | None = None) -> None:
        """Make ``label`` the current object (also when the user picks it in the result layer's label box): the
        prompts added now are its, and only it is segmented again."""
        image = image or self._image_or_report()
        if image is None or image not in self.images.states or label < 1:
            return
        state = self.images.states[image]
        if label != state.session.current_label:
            state.session.select(label)
        self.status.value = f"object {label}: the prompts added now are its"
        if state.result is not None and state.result.selected_label != label:
            state.result.selected_label = label
        self._restyle(image)

    def delete_object(self) -> None:
        """Delete the current object: its voxels (one undo step) and its prompts."""
        image = self._image_or_report()
        if image is None or not self.tasks.idle():
            return
        session = self.session(image)
        label = session.current_label
        dropped = session.delete(label)
        self.images.remove_prompts(image, label)
        self._show(image)
        self.status.value = f"object {label} deleted" + _dropped(session, dropped)

    def lock_object(self, label: int, locked: bool) -> None:
        """Lock or unlock an object; locking the current one starts a new object."""
        image = self._image_or_report()
        if image is None or not self.tasks.idle():
            self._restyle(image)
            return
        session = self.session(image)
        session.lock(label, locked)
        if locked and label == session.current_label:
            self.new_object()
        self._restyle(image)
        self.status.value = f"object {label} {'locked' if locked else 'unlocked'}"

    def show_object(self, label: int, shown: bool) -> None:
        """Show or hide an object's labels and prompts."""
        image = self._image_or_report()
        if image is not None:
            (self.session(image).hidden.discard if shown else self.session(image).hidden.add)(label)
            self._restyle(image)

    def _restyle(self, image: Image | None) -> None:
        """Draw the image's objects as they are now, and save its session if that changed it."""
        if image is None or image not in self.images.states:
            return
        state = self.images.states[image]
        self.colors.restyle(state, self.objects)
        self.files.changed(image, state)

    def undo(self) -> None:
        image = self._image_or_report()
        if image is not None and self.session(image).undo():
            self._show(image)
        elif image is not None:
            show_info("nothing to undo")

    def toggle_polarity(self) -> None:
        self.images.set_polarity(not self.images.positive)
        self.status.value = "new points are " + ("positive" if self.images.positive else "negative")

    def _on_prompts(self, image: Image) -> None:
        """The image's prompts changed: draw them, and segment (at once, or when the running task ends)."""
        self._restyle(image)
        if self.auto.value and self.tasks.busy:
            self._pending_auto = True
        elif self.auto.value:
            self.segment_slice()

    # -- workers -------------------------------------------------------------------------------------------
    @property
    def worker(self):
        return self.tasks.worker

    def cancel(self) -> None:
        self.tasks.cancel()

    def _start(self, action: str) -> None:
        """Decide on the GUI thread what the action does with the prompts (`plan`), then run it in a worker; apply
        its masks when it returns."""
        if not self.tasks.idle():
            return
        try:
            image = chosen_volume(self.image, "the Segment widget")
            session, settings = self.session(image), self._settings(image)
            use = interactive_use(settings["trained"]) if action == "segment" and settings["trained"] else None
            points, boxes = self.prompt_layers(image)
            request = Request(action, self.current_slice(image), self.in3d.value, use)
            chosen = plan(session, read_prompts(points, boxes, image.data.shape), request)
        except SamedError as exc:
            show_error(str(exc))
            return
        if chosen.box_objects:
            give_box_objects(boxes, request.z, chosen.box_objects)

        def run():
            keep_triton_out()  # before the worker loads torch, should the import thread not have run yet
            session.configure(**settings)
            return (yield from chosen.task)

        returned = (lambda objects: self._apply(image, objects)) if chosen.apply else None
        self._running, self._amend = (image if chosen.apply else None), False
        self.tasks.start(run, chosen.total, chosen.description, returned, finished=self._on_finished)

    def _show_partial(self, step) -> None:
        """Show the first part of a running result at once (a 3D object's prompted slices) as an undo step that
        the whole result amends."""
        if step.partial and self._running is not None:
            self.images.states[self._running].session.apply_objects(step.partial, amend=self._amend)
            self._amend = True
            self._show(self._running)

    def _apply(self, image: Image, objects: dict) -> None:
        """Write {label: masks or `Object3D`} to the result layer as one undo step (nothing if ``image`` is gone)."""
        if image not in self.images.states:
            self.status.value = f"{image.name!r} was removed: its result is dropped"
            return
        session = self.images.states[image].session
        reports = [o.describe() for o in objects.values() if hasattr(o, "describe")]
        dropped = session.apply_objects(objects, amend=self._amend)
        self._amend = False
        self._show(image)
        slices = len({z for masks in objects.values() if isinstance(masks, dict) for z, m in masks.items() if m.any()})
        self.status.value = (reports[0] if reports else f"object(s) {', '.join(map(str, objects))}: {slices} "
                             f"slice(s)") + _dropped(session, dropped)

    def _show(self, image: Image) -> None:
        layer, labels = self.result_layer(image), self.images.states[image].session.labels
        if layer.data is not labels:
            layer.data = labels
        layer.refresh()
        self._restyle(image)

    def _on_finished(self) -> None:
        state = self.images.states.get(self._running or self.image.value)
        if state is not None and state.session.embeddings is not None:  # what the model runs on, how fast
            self.fields.show_machine(state.session.embeddings)
        self._running, self._amend = None, False
        if self._pending_auto:
            self._pending_auto = False
            self.segment_slice()


def _dropped(session: InteractiveSession, dropped: int) -> str:
    """What the status line adds when undo dropped old steps to stay within its memory limit."""
    limit = session.history.limit / 2**20
    return f"; undo dropped its {dropped} oldest step(s) to stay within {limit:.0f} MB" if dropped else ""


def _docked(viewer) -> SegmentWidget | None:
    """The Segment widget docked in ``viewer``, if any."""
    window = getattr(viewer, "window", None)
    found = [w for w in (window.dock_widgets.values() if window else ()) if isinstance(w, SegmentWidget)]
    return found[0] if found else None


#: What the Segment widget's keys do (`actions.ACTIONS`), registered with napari once.
COMMANDS = {"napari-samed:segment": SegmentWidget.segment_slice, "napari-samed:propagate": SegmentWidget.propagate,
            "napari-samed:new_object": SegmentWidget.new_object, "napari-samed:undo": SegmentWidget.undo,
            "napari-samed:toggle_polarity": SegmentWidget.toggle_polarity}
actions.register(COMMANDS, _docked)
