"""When a training run stops by itself (`TrainingStop`)."""

from napari_samed.training.loop import TrainingStop

RULE = TrainingStop(max_steps=300, budget=30.0, every=10, target=0.95, patience=3, gain=0.01, name="the DSC")


def test_a_run_stops_when_the_score_reaches_the_target():
    assert RULE.reason(40, 5.0, [0.5, 0.8, 0.9]) is None
    reason = RULE.reason(50, 6.0, [0.5, 0.8, 0.9, 0.96])
    assert reason.startswith("stopped at step 50") and "the DSC reached 0.960" in reason


def test_a_run_stops_when_the_score_has_not_risen_for_patience_checks():
    assert RULE.reason(50, 6.0, [0.5, 0.8, 0.805, 0.81, 0.85]) is None  # the last check rose by 0.05
    reason = RULE.reason(60, 7.0, [0.5, 0.8, 0.805, 0.809, 0.79, 0.804])
    assert "rose less than 0.01 in the last 30 steps" in reason and "best 0.809" in reason


def test_a_run_stops_at_its_budget_or_its_last_step():
    assert "the 30 s budget is spent" in RULE.reason(7, 30.5, [])
    assert RULE.reason(300, 10.0, [0.1] * 2) == "300 steps done"


def test_exactly_n_steps_ignores_score_and_plateau_and_checks_at_the_end():
    rule = TrainingStop.exactly(25)
    assert rule.reason(24, 1e6, [1.0, 1.0]) is None
    assert rule.reason(25, 1.0, [0.0, 0.0, 0.0]) == "25 steps done"
    assert [s for s in range(1, 26) if rule.due(s)] == [10, 20, 25]
