"""Prompt programs: the task's fixed instruction (URIAL-style), and in-context learning with k training
examples. The prompt is carried by the program, so it costs its code length under the checkpoint."""

from posttrain.complexity import coding, scoring
from posttrain.complexity.program_length import driver


def run(model, tokenizer, task, settings):
    programs = [("instruction", "", task.instruction, ())]
    programs += [("icl", f"k={k}", "", tuple(task.train[:k]))
                 for k in settings.get("icl_k", [1, 2, 4, 8]) if k <= len(task.train)]
    payload = coding.code_length_bits(model, tokenizer, [scoring.carried_text(task, i, ex) for _, _, i, ex in programs])
    return [{"estimator": name, "setting": setting, "payload_bits": cost, **driver(__file__),
             "item_scores": scoring.item_scores(model, tokenizer, task, settings["format"], instruction, examples,
                                                settings.get("batch_size", 16))}
            for (name, setting, instruction, examples), cost in zip(programs, payload)]
