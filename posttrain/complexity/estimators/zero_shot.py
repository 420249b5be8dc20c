"""Zero-shot: the program is this driver alone; the checkpoint answers the bare question."""

from posttrain.complexity import scoring
from posttrain.complexity.program_length import driver


def run(model, tokenizer, task, settings):
    items = scoring.item_scores(model, tokenizer, task, settings["format"], batch_size=settings.get("batch_size", 16))
    return [{"estimator": "zero_shot", "setting": "", "payload_bits": 0.0, **driver(__file__), "item_scores": items}]
