from itertools import pairwise

import pytest

from posttrain.schedule import checkpoint_steps


def test_explicit_steps_always_include_step_zero_and_the_end():
    assert checkpoint_steps({"steps": [5, 10]}, 20) == [0, 5, 10, 20]
    assert checkpoint_steps({"steps": [0, 20]}, 20) == [0, 20]


def test_log_spaced_gives_n_distinct_steps_dense_early():
    steps = checkpoint_steps({"log_spaced": 6}, 60)
    assert steps[0] == 0 and steps[-1] == 60
    assert len(steps) == 7 and len(set(steps)) == 7
    gaps = [b - a for a, b in pairwise(steps[1:])]
    assert gaps == sorted(gaps)  # spacing grows: dense early, where SFT drift happens


def test_log_spaced_more_points_than_steps_is_capped():
    assert checkpoint_steps({"log_spaced": 10}, 3) == [0, 1, 2, 3]


def test_steps_past_the_end_are_an_error():
    with pytest.raises(ValueError, match=r"\[30\].*max_steps=20"):
        checkpoint_steps({"steps": [30]}, 20)
