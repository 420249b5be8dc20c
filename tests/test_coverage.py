"""The store's 95 % intervals cover their truth on simulated studies (posttrain/store/simulate.py): every source
of variance the estimators must carry (topic, prompt, seed, seed x prompt, sample), at the default study's sizes,
with 3 and 5 seeds, 200 studies each. An estimator that ignores the seeds' variance fails the same check
(docs/methods.md: Coverage; benchmarks/coverage.py prints the full table)."""

import pytest

from posttrain.store.simulate import Design, coverage

STUDIES, RESAMPLES = 200, 300
CHOSEN = ["(a) one run", "(b) mean over these seeds", "(c) mean over a population of seeds",
          "contrast (a), per seed pair", "contrast (b)", "contrast (c)"]


@pytest.fixture(scope="module", params=[3, 5], ids=lambda n: f"{n}-seeds")
def hits(request):
    return coverage(Design(n_seeds=request.param), STUDIES, RESAMPLES, seed=request.param, workers=2)


def test_every_chosen_interval_covers(hits):
    rates = {k: float(hits[k].mean()) for k in CHOSEN}
    assert min(len(hits[k]) for k in CHOSEN) >= STUDIES
    assert all(0.91 <= r <= 0.99 for r in rates.values()), rates


def test_an_interval_that_ignores_the_seeds_variance_fails_the_same_check(hits):
    # (b)'s interval, conditional on the seeds, read as if it estimated the mean over a population of seeds
    assert hits["wrong: (b)'s interval for (c)"].mean() < 0.91


def test_the_simulated_truth_is_what_the_estimators_aim_at():
    # the same studies without any seed variance: (b) and (c) then share one truth, and both cover it
    rates = coverage(Design(n_seeds=3, seed_drift=0.0), 60, RESAMPLES, seed=11, workers=2)
    assert rates["(b) mean over these seeds"].mean() >= 0.88
    assert rates["wrong: (b)'s interval for (c)"].mean() >= 0.88
