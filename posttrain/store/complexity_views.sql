-- Views over complexity_points (one row per program: the checkpoint it runs on (run, step), task, estimator and
-- setting; bits = payload + driver + harness; score with its bootstrap interval over test items).
-- A weight-delta program runs on its reference: it sits on the reference's frontier, with target_run and
-- target_step naming the checkpoint whose weights it rebuilds.
-- {delta_sql} is a relation (task, delta) filled in from the config: every task's δ grid.

-- The Pareto staircase per checkpoint and task: programs sorted by length, kept when they beat every shorter
-- program's score. Read along bits: the best score reachable with at most that many bits.
CREATE OR REPLACE VIEW complexity_frontier AS
SELECT run, step, task, estimator, family, setting, bits, payload_bits, score, score_lo, score_hi,
       target_run, target_step
FROM (
    SELECT *, max(score) OVER (PARTITION BY run, step, task ORDER BY bits, score DESC
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS best_shorter
    FROM complexity_points
)
WHERE best_shorter IS NULL OR score > best_shorter
ORDER BY run, step, task, bits;

-- The same staircase on payload bits alone (what the programs carry, without driver and harness code).
CREATE OR REPLACE VIEW complexity_frontier_payload AS
SELECT run, step, task, estimator, family, setting, payload_bits, bits, score, score_lo, score_hi,
       target_run, target_step
FROM (
    SELECT *, max(score) OVER (PARTITION BY run, step, task ORDER BY payload_bits, score DESC
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS best_shorter
    FROM complexity_points
)
WHERE best_shorter IS NULL OR score > best_shorter
ORDER BY run, step, task, payload_bits;

-- The δ grid of every task (the same for every run).
CREATE OR REPLACE VIEW complexity_deltas AS {delta_sql};

-- C(T, δ) for every δ of the task's grid, per checkpoint (run, step) and task: the fewest bits of any program
-- running on that checkpoint whose score reaches δ.
--   bits             score >= δ (the estimate)
--   bits_confident   score_lo >= δ: reaches δ with the interval's confidence (a conservative C)
--   bits_optimistic  score_hi >= δ (with bits_confident, the interval of C)
--   payload_bits     the fewest payload bits of any program reaching δ (the payload-only frontier's C)
-- NULL: no program reaches δ.
CREATE OR REPLACE VIEW task_complexity AS
SELECT p.run, p.step, any_value(c.progress) AS progress, p.task, d.delta,
       min(p.bits) FILTER (p.score >= d.delta) AS bits,
       arg_min(p.estimator || CASE WHEN p.setting = '' THEN '' ELSE ' ' || p.setting END, p.bits)
           FILTER (p.score >= d.delta) AS program,
       min(p.bits) FILTER (p.score_lo >= d.delta) AS bits_confident,
       arg_min(p.estimator || CASE WHEN p.setting = '' THEN '' ELSE ' ' || p.setting END, p.bits)
           FILTER (p.score_lo >= d.delta) AS program_confident,
       min(p.bits) FILTER (p.score_hi >= d.delta) AS bits_optimistic,
       min(p.payload_bits) FILTER (p.score >= d.delta) AS payload_bits,
       max(p.score) AS best_score
FROM complexity_points p JOIN complexity_deltas d USING (task)
    LEFT JOIN checkpoints c ON c.run = p.run AND c.step = p.step
GROUP BY p.run, p.step, p.task, d.delta
ORDER BY p.run, p.task, d.delta, p.step;
