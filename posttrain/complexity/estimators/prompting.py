"""Prompt programs: the task's fixed instruction (URIAL-style), and in-context learning with k training
examples. The prompt is carried by the program, so it costs its code length under the checkpoint."""

from posttrain.complexity import coding, scoring
from posttrain.complexity.estimators import driver_bits


def run(model, tokenizer, task, settings):
    prefixes = [("instruction", "", task.instruction)]
    prefixes += [("icl", f"k={k}", "".join(task.format(ex) + "\n\n" for ex in task.train[:k]))
                 for k in settings.get("icl_k", [1, 2, 4, 8]) if k <= len(task.train)]
    driver = driver_bits(__file__)
    payload = coding.code_length_bits(model, tokenizer, [p for _, _, p in prefixes])
    return [{"estimator": name, "setting": setting, "bits": driver + cost, "payload_bits": cost,
             "driver_bits": driver,
             "score": scoring.score(model, tokenizer, task, prefix, settings.get("batch_size", 16))}
            for (name, setting, prefix), cost in zip(prefixes, payload)]
