"""The engines' agreement test (posttrain.probes.engine_agreement) holds its size and has power, by simulation:
questions whose stance distributions differ from question to question, two engines' read-outs of each."""

import numpy as np

from posttrain.probes.engine_agreement import paired_permutation


def simulated(rng, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Each question has its own stance distribution; the second engine's is moved `shift` from support to oppose.
    Each engine's read-out of a question is the mean of 2 noisy samples around it."""
    truth = rng.dirichlet([2.0, 3.0, 2.0], n)
    moved = np.clip(truth + shift * np.array([-1.0, 0.0, 1.0]), 1e-3, None)
    moved /= moved.sum(1, keepdims=True)
    read = [(p[:, None, :] + rng.normal(0, 0.15, (n, 2, 3))).clip(0).mean(1) for p in (truth, moved)]
    return read[0], read[1]


def test_size_is_nominal_and_a_small_shift_is_found():
    rng = np.random.default_rng(0)
    null = [paired_permutation(*simulated(rng, 110, 0.0), resamples=199, seed=i).pvalue for i in range(200)]
    assert 0.02 <= np.mean(np.array(null) < 0.05) <= 0.09  # 200 studies: 5 % +- 3 sd
    shifted = [paired_permutation(*simulated(rng, 110, 0.05), resamples=199, seed=i).pvalue for i in range(50)]
    assert np.mean(np.array(shifted) < 0.05) >= 0.8  # 0.05 of mass moved (a balance shift of 0.10) is seen


def test_identical_read_outs_are_not_told_apart_and_the_statistic_is_the_l1_distance():
    rng = np.random.default_rng(1)
    a, b = simulated(rng, 30, 0.1)
    assert paired_permutation(a, a, resamples=99).pvalue == 1.0
    assert np.isclose(paired_permutation(a, b, resamples=99).statistic, np.abs(a.mean(0) - b.mean(0)).sum())
