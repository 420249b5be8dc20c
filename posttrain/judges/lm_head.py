"""A local causal LM's reading of the judging prompt, with a trained head, as stance judge (kind: lm_head).

The LM reads the same judging prompt as the `lm` judge; instead of its (unreliable, for a small model) verdict
word, the hidden state at the reply position, averaged over a band of middle layers, goes through a logistic
head fitted on the labelled set. Measured on SmolLM2-135M-Instruct: see README, "Stance judges".
A GGUF judge model is dequantised once when the head is fitted and kept beside it (`model/`), so every
probe job loads it in about a second instead of fifteen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from posttrain import precision
from posttrain.forced_choice import chat_prompt
from posttrain.judges import head, templates
from posttrain.judges.embedding import load_head
from posttrain.models import inference_device, load_checkpoint, load_model, load_tokenizer


def layer_band(model, layers: list[int] | None) -> tuple[int, int]:
    """Inclusive range of hidden-state indices (0 = embeddings); default the 50-75 % depth band."""
    n = model.config.num_hidden_layers
    lo, hi = layers or (round(0.5 * n), round(0.75 * n))
    if not 0 <= lo <= hi <= n:
        raise ValueError(f"layers {layers} outside 0..{n} for this model")
    return lo, hi


def truncate(model, band: tuple[int, int]) -> None:
    """Run only the layers the band needs (hidden state i is the input of layer i, so layers 0..hi):
    a quarter of SmolLM2's depth and its vocabulary projection are never computed. In place: judge copies only."""
    model.config.num_hidden_layers = band[1] + 1


@torch.inference_mode()
def features(model, tokenizer, template: dict, items: list[dict], band: tuple[int, int], batch_size: int = 16,
             progress: bool = False) -> np.ndarray:
    """(n, hidden) features: last-position hidden state of each judging prompt, mean over the layer band."""
    texts = [chat_prompt(tokenizer, template["instruction"].format(**t))[0] for t in items]
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    model.eval()
    decoder = model.get_decoder()  # hidden states only: no vocabulary projection
    for start in tqdm(range(0, len(order), batch_size), desc="judge features", disable=not progress):
        idx = order[start : start + batch_size]
        width = max(len(ids[i]) for i in idx)
        batch = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids[i])) + ids[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in idx])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
        hidden = decoder(input_ids=batch.to(model.device), attention_mask=mask.to(model.device),
                       position_ids=positions.to(model.device), output_hidden_states=True).hidden_states
        band_states = torch.stack(hidden[band[0] : band[1] + 1])[:, :, -1].float().mean(0)
        out[idx] = band_states.cpu().numpy()
    return out


def load_judge_model(spec: dict, snapshot: Path | None = None):
    """The judge LM: its dequantised snapshot beside the head when there is one, else from its model spec."""
    if snapshot is not None and (snapshot / "config.json").is_file():
        return load_checkpoint(snapshot)
    tokenizer = load_tokenizer(spec["model_spec"])
    return load_model(spec["model_spec"], tokenizer).to(inference_device()), tokenizer


class LMHeadJudge:
    def __init__(self, spec: dict, progress: bool = True):
        self.name = spec["name"]
        self.head = load_head(spec)
        self.template = templates.load(self.head["template"])
        self.model, self.tokenizer = load_judge_model(spec, Path(spec["head"]).with_name("model"))
        self.band = tuple(self.head["layers"])
        truncate(self.model, self.band)
        self.batch_size = spec.get("batch_size", 16)
        self.progress = progress
        self.precision = precision.resolve(spec.get("precision", precision.JUDGE_DEFAULT), self.model.device.type,
                                           f"judge {self.name}")

    def __call__(self, items: list[dict]) -> list[dict]:
        if not items:
            return []
        with precision.autocast(self.precision, self.model):
            x = features(self.model, self.tokenizer, self.template, items, self.band, self.batch_size, self.progress)
        return head.verdicts(head.apply(self.head, x))
