"""Weight delta: this checkpoint as (reference weights + delta). The delta is quantised per tensor to b bits
(symmetric, one float32 scale per tensor) and zstd-compressed; the score is that of the rebuilt model.

The program runs on the reference, not on this checkpoint: it is what the reference needs to reach this
checkpoint's behaviour. So its row belongs to the reference's frontier (measure.py files it there, with this
checkpoint as its target), and a reference that is this checkpoint itself yields no program."""

import numpy as np
import torch
import zstandard

from posttrain.complexity import scoring
from posttrain.complexity.program_length import driver


def quantise(delta, b):
    scale = float(delta.abs().max()) / (2 ** (b - 1) - 1) or 1.0
    return torch.round(delta / scale).to(torch.int8 if b <= 8 else torch.int16), scale


def run(model, tokenizer, task, settings, references):
    """references: name -> {parameter name: reference tensor}."""
    params = dict(model.named_parameters())
    own = {n: p.detach().to("cpu", copy=True) for n, p in params.items()}  # on the GPU the host keeps the copy
    rows = []
    try:
        for ref_name, ref in references.items():
            for b in settings.get("bits", [2, 4, 8]):
                parts = []
                with torch.no_grad():  # rebuild in place, tensor by tensor: no second copy of the model
                    for n, w in own.items():
                        q, scale = quantise(w.float() - ref[n].float(), b)
                        parts += [np.float32(scale).tobytes(), q.numpy().tobytes()]
                        params[n].copy_(ref[n].float() + q.float() * scale)
                payload = len(zstandard.ZstdCompressor(level=10).compress(b"".join(parts))) * 8
                rows.append({"estimator": "weight_delta", "setting": f"ref={ref_name},bits={b}", "reference": ref_name,
                             "payload_bits": float(payload), **driver(__file__),
                             "item_scores": scoring.item_scores(model, tokenizer, task, settings["format"],
                                                                batch_size=settings.get("batch_size", 16))})
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(own[n])
    return rows
