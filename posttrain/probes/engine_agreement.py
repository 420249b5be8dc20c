"""Whether two sets of stance read-outs of the same questions come from one distribution (docs/engines.md).

Used to check that the vllm engine measures what the hf engine measures on the same checkpoint: the two samplers
draw different text for a seed, so the comparison is between distributions. Each question contributes its mean
(p_support, p_neutral, p_oppose) under each engine; the statistic is the L1 distance between the two engines'
means over questions, and its null distribution swaps the engines within a question (a paired permutation test,
scipy.stats.permutation_test with permutation_type="samples")."""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_permutation(a: np.ndarray, b: np.ndarray, resamples: int = 9999, seed: int = 0):
    """a, b: (questions, 3) mean stance distributions, row i of both the same question. scipy's result:
    .statistic (L1 distance of the means) and .pvalue (one-sided: at least that far apart under the null)."""
    stacked = np.concatenate([a, b])

    def distance(x, y, axis=-1):  # x, y: row indices into `stacked`, observations along the last axis
        return np.abs(stacked[x].mean(axis=-2) - stacked[y].mean(axis=-2)).sum(-1)

    return stats.permutation_test((np.arange(len(a)), np.arange(len(a), 2 * len(a))), distance,
                                  permutation_type="samples", alternative="greater", n_resamples=resamples,
                                  random_state=seed, vectorized=True)
