"""Task complexity probes (prompt, in-context, prequential and weight-delta code lengths) at every checkpoint.

Not built yet (tracked in the issue on task complexity); see ../shared/research/task_complexity.md.
"""
