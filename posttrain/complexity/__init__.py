"""Task complexity at every checkpoint: programs whose length in bits is counted honestly, and their scores.

    coding.py      code lengths under a checkpoint (Σ -log2 p) and a real range coder that achieves them
    tasks/         tasks as data + a scorer (arithmetic, stance, and the hub tasks gsm8k, flores-en-fr, ifeval)
    estimators/    the strategies (zero-shot, instruction / in-context prompts, one-pass prequential LoRA,
                   quantised weight delta); each driver's own source size is part of its bits
    scoring.py     greedy answers to a task's test inputs after a program's prefix
    __main__.py    the per-checkpoint job -> complexity_points rows

See README "Task complexity" and ../shared/research/task_complexity.md.
"""
