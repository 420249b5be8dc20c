"""Zero-shot: the program is this driver alone; the checkpoint answers the bare question."""

from posttrain.complexity import scoring
from posttrain.complexity.estimators import driver_bits


def run(model, tokenizer, task, settings):
    bits = driver_bits(__file__)
    return [{"estimator": "zero_shot", "setting": "", "bits": bits, "payload_bits": 0.0, "driver_bits": bits,
             "score": scoring.score(model, tokenizer, task, "", settings.get("batch_size", 16))}]
