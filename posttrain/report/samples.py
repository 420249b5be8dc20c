"""The sampled answers behind the numbers: for each run, checkpoint and topic, the generation probe's answers with
the judge's verdict, for the summary page's answer browser. Each question's text comes from its prompt set
(packaged with posttrain, named in stance_samples.prompt_set) where it is one of posttrain's own."""

from __future__ import annotations

import json

from posttrain.probes.prompt_sets import PromptSetError
from posttrain.probes.prompt_sets import load as load_prompt_set

MAX_PER_CELL = 40  # answers per run, checkpoint and topic: the page stays a few MB at cluster scale


def _questions(names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out.update({p["id"]: p["question"] for p in load_prompt_set(name).prompts})
        except PromptSetError:  # a user's own prompt set, not packaged: ids only
            continue
    return out


def data(con, limit: int = MAX_PER_CELL) -> dict | None:
    """{"cells": {run: {step: {topic: {"n": all answers, "rows": [[prompt_id, sample_id, judge, response,
    p_support, p_neutral, p_oppose], ...]}}}}, "questions": {prompt_id: text}, "limit": limit};
    None where the study sampled no answers (forced choice only)."""
    frame = con.execute("""
        SELECT * FROM (
            SELECT run, step, topic, prompt_id, sample_id, judge, response, p_support, p_neutral, p_oppose,
                   prompt_set,
                   row_number() OVER (PARTITION BY run, step, topic ORDER BY prompt_id, sample_id) AS k,
                   count(*) OVER (PARTITION BY run, step, topic) AS n
            FROM stance_samples WHERE mode = 'generation')
        WHERE k <= ? ORDER BY run, step, topic, prompt_id, sample_id""", [limit]).df()
    if frame.empty:
        return None
    cells: dict = {}
    for (run, step, topic), g in frame.groupby(["run", "step", "topic"], sort=True):
        rows = [[r.prompt_id, int(r.sample_id), r.judge, r.response, round(r.p_support, 4), round(r.p_neutral, 4),
                 round(r.p_oppose, 4)] for r in g.itertuples()]
        cells.setdefault(run, {}).setdefault(str(step), {})[topic] = {"n": int(g.n.iloc[0]), "rows": rows}
    questions = _questions(sorted(frame.prompt_set.dropna().unique()))
    used = set(frame.prompt_id)
    return {"cells": cells, "questions": {k: v for k, v in questions.items() if k in used}, "limit": limit}


def as_script(payload: dict) -> str:
    """JSON safe inside <script type="application/json"> (no "</script>" can close it early)."""
    return json.dumps(payload, ensure_ascii=False).replace("<", "\\u003c")
