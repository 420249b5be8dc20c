-- Views over complexity_points (one row per run, step, task, estimator and setting: bits, score).
-- {delta_sql} is filled in from the config: per-task δ values, NULL where the default applies.

-- The Pareto staircase per run, checkpoint and task: programs sorted by length, kept when they beat every
-- shorter program's score. Read along bits: the best score reachable with at most that many bits.
CREATE OR REPLACE VIEW complexity_frontier AS
SELECT run, step, task, estimator, family, setting, bits, score
FROM (
    SELECT *, max(score) OVER (PARTITION BY run, step, task ORDER BY bits, score DESC
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS best_shorter
    FROM complexity_points
)
WHERE best_shorter IS NULL OR score > best_shorter
ORDER BY run, step, task, bits;

-- C(T, δ): the fewest bits of any program reaching score ≥ δ, per run, checkpoint and task. δ is the config's
-- value for the task, else the best score of any program at the run's first checkpoint. NULL bits: not reached.
CREATE OR REPLACE VIEW task_complexity AS
WITH firsts AS (
    SELECT run, task, max(score) FILTER (step = first_step) AS first_best
    FROM (SELECT *, min(step) OVER (PARTITION BY run) AS first_step FROM complexity_points)
    GROUP BY ALL
), deltas AS (
    SELECT f.run, f.task, coalesce(c.delta, f.first_best) AS delta,
           CASE WHEN c.delta IS NULL THEN 'first checkpoint best' ELSE 'config' END AS delta_source
    FROM firsts f LEFT JOIN ({delta_sql}) c USING (task)
)
SELECT p.run, p.step, p.task, d.delta, d.delta_source,
       min(p.bits) FILTER (p.score >= d.delta) AS bits,
       arg_min(p.estimator || CASE WHEN p.setting = '' THEN '' ELSE ' ' || p.setting END, p.bits)
           FILTER (p.score >= d.delta) AS program,
       max(p.score) AS best_score
FROM complexity_points p JOIN deltas d USING (run, task)
GROUP BY ALL
ORDER BY p.run, p.task, p.step;
