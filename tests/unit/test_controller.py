"""What a prompt does, decided without Qt: `interactive.controller.plan` over a session and the viewer's prompts."""

import numpy as np
import pytest

from napari_samed.errors import SamedError
from napari_samed.interactive import InteractiveSession
from napari_samed.interactive.controller import Prompts, Request, plan


@pytest.fixture
def session():
    return InteractiveSession(np.zeros((8, 64, 64), np.int16))


def test_prompts_give_each_object_its_latest_box_and_points():
    prompts = Prompts(boxes=[(2, 1, (1, 1, 9, 9)), (2, 1, (2, 2, 8, 8)), (2, 2, (20, 20, 30, 30)),
                             (5, 1, (0, 0, 4, 4))],
                      points=[(2, 5.0, 5.0, 1, 1), (2, 25.0, 25.0, 0, 2), (3, 4.0, 4.0, 1, None)])
    first = prompts.slice_prompt(2, 1)
    assert first.box == (2, 2, 8, 8) and first.points == [(5.0, 5.0)] and first.point_labels == [1]
    assert prompts.slice_prompt(2, 2).point_labels == [0]
    assert [p.z for p in prompts.object_prompts(1)] == [2, 3, 5]  # a point of no object belongs to every object
    assert prompts.slice_boxes(2) == [(1, 1, 9, 9), (2, 2, 8, 8), (20, 20, 30, 30)]
    assert prompts.box_objects(2) == [1, 2, 3]  # two boxes of object 1: numbered in drawing order
    assert Prompts(boxes=[(0, 4, (0, 0, 1, 1)), (0, 2, (2, 2, 3, 3))]).box_objects(0) == [4, 2]


def test_a_box_segments_the_object_in_3d_or_the_slice(session):
    prompts = Prompts(boxes=[(3, 1, (10, 10, 30, 30))])
    in3d = plan(session, prompts, Request("segment", 3))
    assert (in3d.total, in3d.description, in3d.apply) == (8, "object 1 in 3D", True)
    flat = plan(session, prompts, Request("segment", 3, in3d=False))
    assert (flat.total, flat.description) == (1, "segmenting slice 3")


def test_what_cannot_be_done_is_said_before_any_work(session):
    with pytest.raises(SamedError, match="no prompts on slice 4"):
        plan(session, Prompts(boxes=[(3, 1, (10, 10, 30, 30))]), Request("segment", 4))
    with pytest.raises(SamedError, match="add a positive point inside object 1"):
        plan(session, Prompts(points=[(3, 5.0, 5.0, 0, 1)]), Request("segment", 3, trained_use="click3d"))
    with pytest.raises(SamedError, match="nothing to propagate on slice 3"):
        plan(session, Prompts(), Request("propagate", 3))
    session.lock(1)
    with pytest.raises(SamedError, match="object 1 is locked"):
        plan(session, Prompts(boxes=[(3, 1, (10, 10, 30, 30))]), Request("segment", 3))


def test_a_promise_model_gets_the_objects_clicks_on_every_slice_in_the_order_given():
    prompts = Prompts(boxes=[(3, 1, (1, 1, 9, 9))], points=[(5, 1.0, 1.0, 1, 1), (3, 2.0, 2.0, 1, 1),
                                                           (5, 3.0, 3.0, 0, 1), (4, 4.0, 4.0, 1, 2)])
    first, second = prompts.object_clicks(1)  # object 2's click is not object 1's; boxes are not clicks
    assert (first.z, first.points, first.point_labels, first.box) == (5, [(1.0, 1.0), (3.0, 3.0)], [1, 0], None)
    assert (second.z, second.points, second.point_labels, second.box) == (3, [(2.0, 2.0)], [1], None)


def test_a_co_trained_decoder_segments_the_slice_boxes_together(session):
    prompts = Prompts(boxes=[(3, 1, (1, 1, 9, 9)), (3, 1, (20, 20, 30, 30))], points=[(3, 5.0, 5.0, 1, 1)])
    chosen = plan(session, prompts, Request("segment", 3, trained_use="decoder"))
    assert (chosen.total, chosen.description, chosen.box_objects) == (1, "segmenting 2 boxes on slice 3", [1, 2])
    one_box = plan(session, Prompts(boxes=[(3, 1, (1, 1, 9, 9))]), Request("segment", 3, trained_use="decoder"))
    assert one_box.box_objects is None and one_box.description == "object 1 in 3D"


def test_propagation_starts_from_the_mask_else_the_box_and_embedding_writes_nothing(session):
    assert plan(session, Prompts(boxes=[(3, 1, (1, 1, 9, 9))]), Request("propagate", 3)).total == 8
    session.apply({3: np.pad(np.ones((4, 4), bool), 30)})
    assert plan(session, Prompts(), Request("propagate", 3)).description == "propagating"
    embed = plan(session, Prompts(), Request("embed", 5))
    assert (embed.total, embed.apply) == (8, False)
