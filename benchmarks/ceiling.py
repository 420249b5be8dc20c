"""The physical ceiling: how close the value probe's two modes come to this CPU's matmul speed, in one run.

    python benchmarks/ceiling.py --threads 2                          # the full default probe sizes
    python benchmarks/ceiling.py --threads 2 --prompts-per-topic 10   # forced choice on 110 of the 550 prompts

Model: SmolLM2-135M-Instruct, from the default study's GGUF spec (config/config.yaml; its dequantised copy under
results/models/ when the workflow has written one), or `--model DIR` (a save_pretrained folder). The probes run
as the study runs them: forced choice (posttrain.probes.forced_choice.score, values-v1, the config's batch size)
and the generation probe (posttrain.probes.generation.sample with config probes.values.generation), each in the
precision `auto` resolves to on this machine (posttrain.precision), and each:
  timed      once, after a warm-up, with nothing else of this script running;
  counted    in a separate pass under torch.utils.flop_counter.FlopCounterMode (matmuls and attention, every
             shape logged), so "executed" FLOPs are what the kernels were asked to do, padding included;
             "useful" FLOPs are counted analytically: linear layers on real tokens, causal attention over real
             keys, and the vocabulary projection only where a probability is read;
  profiled   in a third pass under torch.profiler: time in matmul/attention kernels, in cache-copying ops, in
             other ops, and outside any op (Python, HF generate, tokenisation);
and the reference ceiling is timed in the same run: torch matmuls of exactly the shapes the probe ran (grouped
by weight shape and power-of-two row count), in fp32 and in bf16. Forced choice also gets the cost of copying the
shared prefix's KV cache for every batch; generation gets per-step decode time against batch size; and the
blocks' fp32 matmuls are run once more through the model's own weights in order, which must come from memory,
to size what weight traffic costs against the cached-weight reference.
Writes benchmarks/results/ceiling.json and prints a table. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from posttrain import forced_choice, precision
from posttrain.config import read_yaml
from posttrain.io import write_json
from posttrain.models import load_model, load_tokenizer
from posttrain.plan import Plan
from posttrain.probes import generation, prompt_sets

REPO = Path(__file__).resolve().parents[1]
aten = torch.ops.aten

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"}
ATTENTION_OPS = {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_attention_math", "aten::_scaled_dot_product_flash_attention",
                 "aten::_scaled_dot_product_efficient_attention"}
# Ops that move data without computing: the KV cache's concatenation at every step, its deepcopy / row
# repetition, dtype casts. Named separately because their share is what a static cache would remove.
COPY_OPS = {"aten::cat", "aten::clone", "aten::copy_", "aten::index_select", "aten::repeat_interleave",
            "aten::_to_copy", "aten::contiguous", "aten::index", "aten::stack"}


# ---------------------------------------------------------------- analytic FLOPs


@dataclass(frozen=True)
class Arch:
    """What the FLOP count of a decoder-only Llama/Qwen-style model depends on."""
    d: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int

    @classmethod
    def of(cls, config) -> Arch:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                   config.num_key_value_heads, head_dim, config.intermediate_size, config.vocab_size)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer of one block: q, k, v, o, gate, up, down."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [(self.d, q), (self.d, kv), (self.d, kv), (q, self.d), (self.d, self.ffn), (self.d, self.ffn),
                (self.ffn, self.d)]

    def linear_per_token(self) -> int:
        return 2 * self.layers * sum(i * o for i, o in self.layer_shapes())

    def attention(self, rows: int, queries: int, keys: int) -> int:
        """Scores and weighted sum, all layers, for `queries` positions against `keys` each (dense, as sdpa runs)."""
        return 4 * self.layers * rows * self.heads * self.head_dim * queries * keys

    def head(self, positions: int) -> int:
        return 2 * self.d * self.vocab * positions


def forward_flops(arch: Arch, rows: int, queries: int, keys: int, logits: int) -> int:
    """FLOPs one forward executes: `rows` x `queries` new tokens attending to `keys` (cache + new), the vocabulary
    projection on `logits` positions in all. What FlopCounterMode counts, padding included (tests check this)."""
    return rows * queries * arch.linear_per_token() + arch.attention(rows, queries, keys) + arch.head(logits)


def causal_pairs(real: int, before: int = 0) -> int:
    """(query, key) pairs among `real` new tokens after `before` real cached keys, causal."""
    return real * before + real * (real + 1) // 2


# ---------------------------------------------------------------- counting executed FLOPs, with shapes


def _raw(formula):
    """Mark a FLOP formula to be called with the tensors themselves (strides needed), not only their shapes."""
    formula._get_raw = True
    return formula


class ShapeLog:
    """FlopCounterMode with a record of every matmul's (rows, in, out) and of the attention FLOPs.

    Adds the CPU attention kernel (aten._scaled_dot_product_flash_attention_for_cpu), which torch's counter
    does not know (it would count attention as 0 on CPU). A bmm whose second operand is a broadcast weight
    (stride 0 across the batch: F.linear on a non-contiguous 3-D slice, as the last-position logits are) is one
    matmul of B*M rows, and is logged as such."""

    def __init__(self):
        self.mm: collections.Counter = collections.Counter()  # (M, K, N) -> calls
        self.bmm: collections.Counter = collections.Counter()  # (B, M, K, N) -> calls (true batched products)
        self.attention = 0

    @_raw
    def _mm(self, a, b, *_, out_val=None, **__):
        self.mm[(a.shape[0], a.shape[1], b.shape[1])] += 1
        return 2 * a.shape[0] * a.shape[1] * b.shape[1]

    @_raw
    def _addmm(self, bias, a, b, *_, out_val=None, **__):
        return self._mm(a, b)

    @_raw
    def _bmm(self, a, b, *_, out_val=None, **__):
        batch, m, k = a.shape
        n = b.shape[2]
        if b.stride(0) == 0:
            self.mm[(batch * m, k, n)] += 1
        else:
            self.bmm[(batch, m, k, n)] += 1
        return 2 * batch * m * k * n

    @_raw
    def _sdpa(self, q, k, v, *_, out_val=None, **__):
        flops = sdpa_flop_count(q.shape, k.shape, v.shape)
        self.attention += flops
        return flops

    def mode(self) -> FlopCounterMode:
        mapping = {aten.mm: self._mm, aten.addmm: self._addmm, aten.bmm: self._bmm,
                   aten._scaled_dot_product_flash_attention_for_cpu: self._sdpa,
                   aten._scaled_dot_product_flash_attention: self._sdpa,
                   aten._scaled_dot_product_efficient_attention: self._sdpa}
        return FlopCounterMode(display=False, custom_mapping=mapping)


def count(fn) -> tuple[int, ShapeLog, object]:
    """(FLOPs executed, their shapes, fn's result) of one call of fn."""
    log = ShapeLog()
    with log.mode() as counter:
        result = fn()
    return counter.get_total_flops(), log, result


# ---------------------------------------------------------------- the reference: matmuls of the same shapes


def _timed(fn, min_seconds: float, max_calls: int = 200) -> float:
    """Seconds per call: one warm-up call, then the best of at least 2 calls, repeated until min_seconds pass."""
    fn()
    best, spent, calls = math.inf, 0.0, 0
    while (spent < min_seconds or calls < 2) and calls < max_calls:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent, calls = min(best, took), spent + took, calls + 1
    return best


class Reference:
    """Seconds of one torch matmul per shape and dtype, measured once and reused by every probe's ceiling.

    F.linear(x [M, K], W [N, K]) is exactly the call the model's linear layers make (weights as stored)."""

    def __init__(self, min_seconds: float):
        self.min_seconds = min_seconds
        self.seconds: dict[tuple, float] = {}

    def time(self, m: int, k: int, n: int, dtype: torch.dtype, batch: int = 0) -> float:
        key = (batch, m, k, n, dtype)
        if key not in self.seconds:
            gen = torch.Generator().manual_seed(0)
            if batch:
                x = torch.randn(batch, m, k, generator=gen).to(dtype)
                w = torch.randn(batch, k, n, generator=gen).to(dtype)
                fn = lambda: torch.bmm(x, w)
            else:
                x = torch.randn(m, k, generator=gen).to(dtype)
                w = torch.randn(n, k, generator=gen).to(dtype)
                fn = lambda: torch.nn.functional.linear(x, w)
            # emulated bf16 is ~60x slower than fp32: the best of 2 calls is already long enough to time
            emulated = dtype == torch.bfloat16 and not precision.native_bf16("cpu")[0]
            with torch.inference_mode():
                self.seconds[key] = _timed(fn, 0.0 if emulated else self.min_seconds)
        return self.seconds[key]

    def ceiling(self, log: ShapeLog, dtype: torch.dtype) -> dict:
        """FLOP/s of the probe's own matmul mix run as bare torch matmuls: sum of FLOPs / sum of reference
        times. Shapes are grouped by (in, out) and power-of-two rows; each group is timed at its FLOP-weighted
        mean row count, so a few dozen matmuls stand for thousands. Attention FLOPs (a few % here) are charged
        at the matmul mix's rate."""
        groups: dict[tuple, list] = collections.defaultdict(list)
        for (m, k, n), calls in log.mm.items():
            groups[(0, 2 ** round(math.log2(m)), k, n)].append((m, calls, 2 * m * k * n * calls))
        for (b, m, k, n), calls in log.bmm.items():
            groups[(b, 2 ** round(math.log2(m)), k, n)].append((m, calls, 2 * b * m * k * n * calls))
        flops = seconds = 0.0
        for (b, _, k, n), members in groups.items():
            group_flops = sum(f for _, _, f in members)
            m = max(1, round(sum(mm * f for mm, _, f in members) / group_flops))
            rate = 2 * max(b, 1) * m * k * n / self.time(m, k, n, dtype, b)
            flops, seconds = flops + group_flops, seconds + group_flops / rate
        return {"flops_per_s": flops / seconds, "matmul_flops": flops, "matmul_seconds_at_ceiling": seconds,
                "shape_groups_timed": len(groups)}


def layers_log(arch: Arch, rows: int) -> ShapeLog:
    """The linear layers of one forward over `rows` tokens (no vocabulary projection), as ShapeLog records them."""
    log = ShapeLog()
    for i, o in arch.layer_shapes():
        log.mm[(rows, i, o)] += arch.layers
    return log


def decode_log(arch: Arch, rows: int, keys: int) -> ShapeLog:
    """The matmuls and attention of one decode step, as ShapeLog would record them."""
    log = layers_log(arch, rows)
    log.mm[(rows, arch.d, arch.vocab)] += 1
    log.attention = arch.attention(rows, 1, keys)
    return log


@torch.inference_mode()
def weights_streamed(model, arch: Arch, rows: int, ref: Reference) -> dict:
    """The blocks' linear layers of one forward over `rows` tokens, as bare fp32 matmuls, run two ways: each
    shape repeated on one weight (what Reference times: the weight stays in cache) and once through the
    model's own weights in order (every weight comes from memory, as in the probe: 135M fp32 parameters do
    not fit in any cache). The gap between the two is the cost of weight traffic, not of the probe's code."""
    weights = [m.weight for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m.weight.shape[0] != arch.vocab]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], generator=torch.Generator().manual_seed(0)) for w in weights}

    def chain():
        for w in weights:
            torch.nn.functional.linear(inputs[w.shape[1]], w)

    flops = sum(2 * rows * w.numel() for w in weights)
    chained = flops / _timed(chain, ref.min_seconds, 20)
    return {"rows": rows, "model_weights_in_order_flops_per_s": chained,
            "same_shapes_weight_in_cache_flops_per_s":
                ref.ceiling(layers_log(arch, rows), torch.float32)["flops_per_s"]}


# ---------------------------------------------------------------- where the wall time goes


def profiled(fn) -> dict:
    """Run fn under the CPU profiler: seconds in matmul/attention kernels, in copies, in other ops, outside ops."""
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    wall = time.perf_counter() - start
    shares = collections.Counter()
    other = collections.Counter()
    calls = 0
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        s = e.self_cpu_time_total / 1e6
        calls += e.count
        kind = ("matmul" if e.key in MATMUL_OPS else "attention" if e.key in ATTENTION_OPS
                else "copies" if e.key in COPY_OPS else "other_ops")
        shares[kind] += s
        if kind == "other_ops":
            other[e.key] += s
    in_ops = sum(shares.values())
    return {"profiled_wall_s": wall, "op_calls": calls, "in_ops_s": in_ops,
            **{f"{k}_s": shares[k] for k in ("matmul", "attention", "copies", "other_ops")},
            "outside_ops_s": max(wall - in_ops, 0.0),
            "top_other_ops_s": dict(other.most_common(6))}


# ---------------------------------------------------------------- forced choice


def forced_setup(model, tokenizer, ps, batch_size: int) -> dict:
    """The token bookkeeping score() does (same helpers, same order): prefix length, label sequences, batches."""
    seqs = forced_choice.label_sequences(tokenizer, ps.labels)
    flat = [s for label in forced_choice.STANCES for s in seqs[label]]
    rendered = [forced_choice.chat_prompt(tokenizer, ps.render().format(**p)) for p in ps.prompts]
    add_special = rendered[0][1] == "plain"
    ids = [tokenizer.encode(text, add_special_tokens=add_special) for text, _ in rendered]
    plen = forced_choice._common_prefix(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [[len(ids[i]) - plen for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
    return {"ids": ids, "plen": plen, "multi": [s for s in flat if len(s) > 1], "batches": batches}


def forced_flops(arch: Arch, setup: dict) -> dict:
    """Executed (as the kernels run them) and useful FLOPs of score(), analytically."""
    plen, multi = setup["plen"], setup["multi"]
    m = len(multi)
    span = max((len(s) for s in multi), default=1) - 1
    real_cont = sum(len(s) - 1 for s in multi)
    executed = forward_flops(arch, 1, plen, plen, plen) if plen else 0  # the prefix: every position's logits
    useful = plen * arch.linear_per_token() + arch.attention(1, 1, causal_pairs(plen)) if plen else 0
    tokens = {"executed": plen, "useful": plen}
    for own in setup["batches"]:
        b, width = len(own), max(own)
        executed += forward_flops(arch, b, width, plen + width, b)
        useful += sum(n * arch.linear_per_token() + arch.attention(1, 1, causal_pairs(n, plen)) for n in own)
        useful += arch.head(b)
        tokens["executed"] += b * width
        tokens["useful"] += sum(own)
        if multi:
            executed += forward_flops(arch, b * m, span, plen + width + span, b * m * span)
            useful += sum(real_cont * arch.linear_per_token() + arch.head(real_cont)
                          + sum(arch.attention(1, 1, causal_pairs(len(s) - 1, plen + n)) for s in multi) for n in own)
            tokens["executed"] += b * m * span
            tokens["useful"] += len(own) * real_cont
    return {"executed": executed, "useful": useful, "tokens": tokens}


def prefix_copy_seconds(model, setup: dict, batch_size: int, repeats: int = 20) -> float:
    """Seconds per batch of what score() does before each batch's forward: deepcopy the shared prefix's KV
    cache and repeat it to the batch's rows."""
    with torch.inference_mode():
        cache = model(input_ids=torch.tensor([setup["ids"][0][: setup["plen"]]]), use_cache=True).past_key_values

        def once():
            c = copy.deepcopy(cache)
            c.batch_repeat_interleave(batch_size)

        return _timed(once, 0.5, repeats)


# ---------------------------------------------------------------- generation


def generation_batches(tokenizer, prompts: list[dict], settings: dict, rows: list[dict]) -> list[list[tuple]]:
    """sample()'s batches as (prompt tokens, generated forwards needed) per row, in sample()'s order."""
    lengths = {p["id"]: len(tokenizer.encode(generation.answer_prompt(tokenizer, p["question"])[0],
                                             add_special_tokens=False))
               for p in prompts}
    jobs = sorted(((p["id"], k) for p in prompts for k in range(settings["samples"])), key=lambda j: lengths[j[0]])
    n_tokens = {(r["prompt_id"], r["sample_id"]): r["n_tokens"] for r in rows}
    size, cap = settings["batch_size"], settings["max_new_tokens"]
    # a row needs the forward that emits its end-of-turn token (n_tokens counts the tokens before it)
    return [[(lengths[pid], min(n_tokens[(pid, k)] + 1, cap)) for pid, k in jobs[s : s + size]]
            for s in range(0, len(jobs), size)]


def generation_flops(arch: Arch, batches: list[list[tuple]]) -> dict:
    executed = useful = 0
    tokens = {"executed": 0, "useful": 0}
    for batch in batches:
        b, width = len(batch), max(p for p, _ in batch)
        forwards = max(g for _, g in batch)  # generate stops once every row has ended, or at max_new_tokens
        executed += forward_flops(arch, b, width, width, b)
        executed += sum(forward_flops(arch, b, 1, width + j, b) for j in range(1, forwards))
        tokens["executed"] += b * (width + forwards - 1)
        for p, g in batch:
            useful += p * arch.linear_per_token() + arch.attention(1, 1, causal_pairs(p)) + arch.head(1)
            useful += sum(arch.linear_per_token() + arch.attention(1, 1, p + j) + arch.head(1) for j in range(1, g))
            tokens["useful"] += p + g - 1
    return {"executed": executed, "useful": useful, "tokens": tokens}


@torch.inference_mode()
def decode_sweep(model, tokenizer, arch: Arch, prompts: list[dict], sizes: list[int], steps: int, ref: Reference,
                 numerics: str) -> list[dict]:
    """Per decode step: seconds, per-row ms, achieved FLOP/s, against the matmul ceiling at the same rows; and
    the Gumbel sampler's cost per step (one RNG call per row). The model forward is what generate calls."""
    texts = [generation.answer_prompt(tokenizer, p["question"])[0] for p in prompts]
    dtype = torch.bfloat16 if numerics == "bf16" else torch.float32
    out = []
    pad_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for b in sizes:
            enc = tokenizer([texts[i % len(texts)] for i in range(b)], return_tensors="pt", padding=True,
                            add_special_tokens=False)
            mask = enc["attention_mask"]
            with precision.autocast(numerics, model):
                res = model(**enc, use_cache=True, logits_to_keep=1)
                cache, nxt = res.past_key_values, res.logits[:, -1].argmax(-1, keepdim=True)
                width = mask.shape[1]
                seconds = []
                for j in range(1, steps + 1):
                    mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
                    pos = mask.sum(-1, keepdim=True) - 1
                    start = time.perf_counter()
                    res = model(input_ids=nxt, attention_mask=mask, position_ids=pos, past_key_values=cache,
                                use_cache=True, logits_to_keep=1)
                    nxt = res.logits[:, -1].argmax(-1, keepdim=True)
                    seconds.append(time.perf_counter() - start)
            sampler = generation.PerRowGumbelSampler(list(range(b)), 0.7, 1.0, "cpu")
            scores = torch.randn(b, arch.vocab)
            sampler_s = _timed(lambda: sampler(None, scores), 0.3, 20)  # noqa: B023
            step = sorted(seconds)[len(seconds) // 2]
            keys = width + steps // 2
            flops = forward_flops(arch, b, 1, keys, b)
            ceil = ref.ceiling(decode_log(arch, b, keys), dtype)["flops_per_s"]
            out.append({"batch": b, "prompt_width": width, "median_step_s": step, "ms_per_row_token": 1e3 * step / b,
                        "tokens_per_s": b / step, "flops_per_step": flops, "achieved_flops_per_s": flops / step,
                        "ceiling_flops_per_s": ceil, "ratio": flops / step / ceil,
                        "sampler_s_per_step": sampler_s, "sampler_share_of_step": sampler_s / (step + sampler_s)})
    finally:
        tokenizer.padding_side = pad_side
    return out


# ---------------------------------------------------------------- the run


def measure_probe(name: str, model, run, numerics: str, flops_of, ref: Reference, dtypes: dict, arch: Arch
                  ) -> tuple[dict, object]:
    """Time (no counter), count (FlopCounterMode), profile (torch.profiler) one probe; compare with the ceiling.
    flops_of(result of the counted call) gives the analytic executed and useful FLOPs. Returns (part, result)."""
    with precision.autocast(numerics, model):
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        print(f"{name}: timed {wall:.1f}s", flush=True)
        executed, log, result = count(run)
        flops = flops_of(result)
        print(f"{name}: counted {executed / 1e9:.1f} GFLOP", flush=True)
        prof = profiled(run)
    mlp = {m: c for (m, k, n), c in log.mm.items() if (k, n) == (arch.d, arch.ffn)}
    part = {"mlp_rows_flop_weighted": round(sum(m * m * c for m, c in mlp.items())
                                            / sum(m * c for m, c in mlp.items())),
            "seconds": wall, "executed_flops": executed, "executed_flops_analytic": flops["executed"],
            "analytic_over_counted": flops["executed"] / executed, "useful_flops": flops["useful"],
            "attention_share_of_executed": log.attention / executed,
            "padding_and_masked_share": 1 - flops["useful"] / flops["executed"], "tokens": flops["tokens"],
            "achieved_flops_per_s": executed / wall, "useful_flops_per_s": flops["useful"] / wall, "ceiling": {}}
    for label, dtype in dtypes.items():
        c = ref.ceiling(log, dtype)
        part["ceiling"][label] = {**c, "ratio": part["achieved_flops_per_s"] / c["flops_per_s"],
                                  "useful_ratio": part["useful_flops_per_s"] / c["flops_per_s"]}
    # Profiled op times hold with or without the profiler (kernels dominate them); the rest of the unprofiled
    # wall is Python, HF and tokeniser time outside any torch op.
    prof["outside_ops_unprofiled_s"] = max(wall - prof["in_ops_s"], 0.0)
    part["profile"] = prof
    return part, result


def cpu_pressure() -> str | None:
    """Linux PSI: the share of time runnable tasks waited for a CPU (avg10/60/300). Anything but ~0 means other
    work shared the cores while this ran, and the times are not the machine's."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a save_pretrained folder (default: the config's SmolLM2 GGUF)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts-per-topic", type=int, default=None, help="forced choice: default all 50")
    parser.add_argument("--generation-prompts-per-topic", type=int, default=None,
                        help="generation: default the config's max_prompts_per_topic (3)")
    parser.add_argument("--decode-batches", default="16,48,96", help="batch sizes of the decode-step sweep")
    parser.add_argument("--decode-steps", type=int, default=16)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 reference (slow where emulated)")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="time each reference matmul this long")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ceiling.json"))
    args = parser.parse_args(argv)
    try:
        sizes = [int(x) for x in args.decode_batches.split(",")]
    except ValueError:
        sys.exit(f"error: --decode-batches must be comma-separated integers, got {args.decode_batches!r}")
    torch.set_num_threads(args.threads)
    plan = Plan(read_yaml(REPO / "config" / "config.yaml"), root=str(REPO / "results"))
    config = plan.config
    values = config["probes"]["values"]
    spec = {"path": args.model} if args.model else plan.model_spec("smollm2-135m")
    load_before = os.getloadavg()
    tokenizer = load_tokenizer(spec)
    model = load_model(spec, tokenizer).eval()
    arch = Arch.of(model.config)
    native, found = precision.native_bf16("cpu")
    fc_prec = precision.resolve(values["precision"]["forced_choice"], "cpu", "forced-choice probe")
    gen_prec = precision.resolve(values["precision"]["generation"], "cpu", "generation probe")
    dtypes = {"fp32": torch.float32} | ({} if args.no_bf16 else {"bf16": torch.bfloat16})
    ref = Reference(args.min_seconds)

    result = {
        "command": "python benchmarks/ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "capability":
                    torch.backends.cpu.get_cpu_capability(), "native_bf16": native, "found": found,
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "model": {"spec": spec, "parameters": sum(p.numel() for p in model.parameters()),
                  "linear_flops_per_token": arch.linear_per_token(), "arch": arch.__dict__},
        "precision": {"forced_choice": fc_prec, "generation": gen_prec},
        "loadavg_before": load_before,
        "cpu_pressure_before": cpu_pressure(),
    }

    # forced choice
    ps = prompt_sets.load(values["prompt_set"], args.prompts_per_topic)
    batch = values["batch_size"]
    setup = forced_setup(model, tokenizer, ps, batch)
    warm = prompt_sets.load(values["prompt_set"], 1)
    with precision.autocast(fc_prec, model):
        forced_choice.score(model, tokenizer, warm, batch, progress=False)  # warm-up (allocator, autocast cache)
    part, _ = measure_probe("forced choice", model,
                            lambda: forced_choice.score(model, tokenizer, ps, batch, progress=False),
                            fc_prec, lambda _: forced_flops(arch, setup), ref, dtypes, arch)
    per_batch = prefix_copy_seconds(model, setup, batch)
    part |= {"prompts": len(ps.prompts), "batch_size": batch, "batches": len(setup["batches"]),
             "prefix_tokens": setup["plen"], "multi_token_variants": len(setup["multi"]),
             "prefix_cache_copy": {"seconds_per_batch": per_batch, "seconds": per_batch * len(setup["batches"]),
                                   "share_of_wall": per_batch * len(setup["batches"]) / part["seconds"]}}
    result["forced_choice"] = part

    # generation
    settings = values["generation"]
    gps = prompt_sets.load(values["prompt_set"], args.generation_prompts_per_topic or settings["max_prompts_per_topic"])
    with precision.autocast(gen_prec, model):
        generation.sample(model, tokenizer, gps.prompts[:2], {**settings, "batch_size": 2, "max_new_tokens": 4},
                          progress=False)

    def gen_flops(rows):  # every sample's token count comes from the counted run (same seeds: same samples)
        return generation_flops(arch, generation_batches(tokenizer, gps.prompts, settings, rows))

    part, rows = measure_probe("generation", model,
                               lambda: generation.sample(model, tokenizer, gps.prompts, settings, False),
                               gen_prec, gen_flops, ref, dtypes, arch)
    batches = generation_batches(tokenizer, gps.prompts, settings, rows)
    forwards = sum(max(g for _, g in b) for b in batches)
    part |= {"samples": len(rows), "settings": settings, "batch_rows": [len(b) for b in batches],
             "generated_tokens": sum(r["n_tokens"] for r in rows), "forwards": forwards,
             "seconds_per_forward": part["seconds"] / forwards}
    part["decode_sweep"] = decode_sweep(model, tokenizer, arch, gps.prompts, sizes, args.decode_steps, ref, gen_prec)
    result["generation"] = part

    # the reference on its own: a large matmul of the MLP's shape, the best this CPU does
    result["reference_large_mlp_matmul"] = {
        label: {"shape": [1024, arch.d, arch.ffn],
                "flops_per_s": 2 * 1024 * arch.d * arch.ffn / ref.time(1024, arch.d, arch.ffn, dtype)}
        for label, dtype in dtypes.items()}
    result["weights_streamed_fp32"] = [weights_streamed(model, arch, rows, ref) for rows in
                                       [result["forced_choice"]["mlp_rows_flop_weighted"], *sizes]]
    result["loadavg_after"] = os.getloadavg()
    result["cpu_pressure_after"] = cpu_pressure()
    write_json(args.out, result)
    print(table(result))


def table(r: dict) -> str:
    g = 1e9
    head = (f"ceiling.py {r['date']}  threads {r['machine']['threads']}  {r['machine']['found']}  "
            f"probe precision {r['precision']}  load {r['loadavg_before'][0]:.1f} -> {r['loadavg_after'][0]:.1f}")
    lines = [head,
             f"{'probe':<14}{'wall s':>8}{'exec GF':>9}{'useful':>8}{'GF/s':>8}"
             + "".join(f"{'ceil ' + k:>11}{'ratio':>7}" for k in r["forced_choice"]["ceiling"])
             + f"{'matmul':>8}{'attn':>6}{'copies':>8}{'other':>7}{'outside':>9}"]
    for name in ("forced_choice", "generation"):
        p = r[name]
        pr = p["profile"]
        lines.append(f"{name:<14}{p['seconds']:>8.1f}{p['executed_flops'] / g:>9.1f}"
                     f"{p['useful_flops'] / p['executed_flops_analytic']:>8.0%}{p['achieved_flops_per_s'] / g:>8.2f}"
                     + "".join(f"{c['flops_per_s'] / g:>11.2f}{c['ratio']:>7.0%}" for c in p["ceiling"].values())
                     + "".join(f"{pr[k] / pr['profiled_wall_s']:>{w}.0%}" for k, w in
                               (("matmul_s", 8), ("attention_s", 6), ("copies_s", 8), ("other_ops_s", 7),
                                ("outside_ops_s", 9))))
    for name in ("forced_choice", "generation"):
        p = r[name]
        lines.append(f"{name}: matmul kernels {p['profile']['matmul_s']:.1f}s in the probe, "
                     + ", ".join(f"{c['matmul_seconds_at_ceiling']:.1f}s as bare {k} matmuls"
                                 for k, c in p["ceiling"].items())
                     + f"; {p['profile']['op_calls']} op calls; padding+masked {p['padding_and_masked_share']:.1%}")
    fc = r["forced_choice"]["prefix_cache_copy"]
    lines.append(f"forced choice: prefix KV-cache deepcopy {1e3 * fc['seconds_per_batch']:.1f} ms/batch, "
                 f"{fc['share_of_wall']:.1%} of wall")
    gp = r["generation"]
    lines.append(f"generation probe: {1e3 * gp['seconds_per_forward']:.1f} ms per forward (batches of "
                 f"{gp['batch_rows']} rows, {gp['forwards']} forwards, prefill included)")
    lines.append("decode step: batch  ms/step  ms/row-token  tok/s  GF/s  ceiling GF/s  ratio  sampler share")
    for d in r["generation"]["decode_sweep"]:
        lines.append(f"{d['batch']:>18}{1e3 * d['median_step_s']:>9.1f}{d['ms_per_row_token']:>14.2f}"
                     f"{d['tokens_per_s']:>7.0f}{d['achieved_flops_per_s'] / g:>6.1f}"
                     f"{d['ceiling_flops_per_s'] / g:>14.1f}{d['ratio']:>7.0%}{d['sampler_share_of_step']:>15.0%}")
    lines.append("fp32 layer matmuls of one forward, rows: weight in cache (same shape repeated) vs the model's "
                 "weights in order (streamed from memory), GFLOP/s")
    lines.extend(f"{w['rows']:>10}{w['same_shapes_weight_in_cache_flops_per_s'] / g:>9.1f}"
                 f"{w['model_weights_in_order_flops_per_s'] / g:>9.1f}" for w in r["weights_streamed_fp32"])
    lines.append("large MLP matmul [1024x576]x[576x1536]: " + ", ".join(
        f"{k} {v['flops_per_s'] / g:.1f} GFLOP/s" for k, v in r["reference_large_mlp_matmul"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
