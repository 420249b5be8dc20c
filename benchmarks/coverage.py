"""Coverage of the store's 95 % intervals on simulated studies with a known truth (posttrain/store/simulate.py),
at the default study's sizes (11 topics x 10 prompts x 2 samples, two checkpoints) and at 3 and 5 seeds.

    python benchmarks/coverage.py [--studies 400] [--resamples 400] [--workers 2]

Writes benchmarks/results/coverage.json and prints the table that docs/methods.md (Coverage) shows. Rows marked
"wrong" or "not chosen" are estimators that must not, or did not, pass: the first shows the check can fail.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine import cpu

from posttrain.store.simulate import Design, coverage

OUT = Path(__file__).parent / "results" / "coverage.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = {"command": f"python benchmarks/coverage.py --studies {args.studies} --resamples {args.resamples}",
               "cpu": cpu(), "nominal": 0.95, "design": Design().__dict__, "by_seeds": {}}
    for n_seeds in (3, 5):
        start = time.time()
        hits = coverage(Design(n_seeds=n_seeds), args.studies, args.resamples, seed=1, workers=args.workers)
        results["by_seeds"][n_seeds] = {k: {"coverage": float(v.mean()), "n": len(v),
                                            "mc_se": float(np.sqrt(v.mean() * (1 - v.mean()) / len(v)))}
                                        for k, v in hits.items()}
        results["by_seeds"][n_seeds]["seconds"] = round(time.time() - start, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    kinds = [k for k in results["by_seeds"][3] if k != "seconds"]
    print("| interval | 3 seeds | 5 seeds |\n|---|---|---|")
    for k in kinds:
        cells = [f"{results['by_seeds'][s][k]['coverage']:.3f} (n = {results['by_seeds'][s][k]['n']})" for s in (3, 5)]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
