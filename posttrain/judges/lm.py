"""A local causal LM as stance judge: the forced-choice read-out of its one-word verdict after a judging prompt."""

from __future__ import annotations

from posttrain import forced_choice, precision
from posttrain.judges import templates
from posttrain.models import inference_device, load_model, load_tokenizer
from posttrain.stances import PromptSet


class LMJudge:
    def __init__(self, spec: dict, progress: bool = True):
        self.name = spec["name"]
        self.template = templates.load(spec.get("template", "stance-judge-v1"))
        self.batch_size = spec.get("batch_size", 8)
        self.tokenizer = load_tokenizer(spec["model_spec"])
        self.model = load_model(spec["model_spec"], self.tokenizer).to(inference_device())
        self.progress = progress
        self.precision = precision.resolve(spec.get("precision", precision.JUDGE_DEFAULT), self.model.device.type,
                                           f"judge {self.name}")

    def __call__(self, items: list[dict]) -> list[dict]:
        if not items:
            return []
        judged = PromptSet(self.template["name"], self.template["instruction"], self.template["labels"],
                           [{"question": t["question"], "response": t["response"], "topic": t.get("topic")}
                            for t in items])
        with precision.autocast(self.precision, self.model):
            scores = forced_choice.score(self.model, self.tokenizer, judged, self.batch_size, self.progress)
        return [{k: s[k] for k in ("p_support", "p_neutral", "p_oppose", "label_mass")} for s in scores]
