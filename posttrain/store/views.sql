-- Derived views of study.duckdb. {extremum_fraction} is filled in from the config's drift section.

-- Mean stance distribution per topic at every checkpoint (over the topic's prompts and samples).
CREATE OR REPLACE VIEW stance_by_topic AS
SELECT s.run, s.step, c.progress, s.topic, s.mode,
       avg(s.p_support) AS p_support, avg(s.p_neutral) AS p_neutral, avg(s.p_oppose) AS p_oppose,
       count(DISTINCT s.prompt_id) AS n_prompts, count(*) AS n_samples
FROM stance_samples s JOIN checkpoints c USING (run, step)
GROUP BY ALL;

-- One row per run, topic, probe mode and stance: the curve over the stage's checkpoints.
CREATE OR REPLACE VIEW stance_curve AS
SELECT run, step, progress, topic, mode, 'support' AS stance, p_support AS value FROM stance_by_topic
UNION ALL SELECT run, step, progress, topic, mode, 'neutral', p_neutral FROM stance_by_topic
UNION ALL SELECT run, step, progress, topic, mode, 'oppose', p_oppose FROM stance_by_topic;

-- Drift over each run (= one stage: its step 0 is the stage's starting weights).
--   magnitude   = value at the last checkpoint - value at the first (signed)
--   extremum    = the checkpoint whose change from the first is largest in absolute value
--   drift_time  = (first step whose |change| reaches {extremum_fraction} x |change at the extremum| - first step)
--                 / (last step - first step), in [0, 1]; NULL when the curve never moves.
CREATE OR REPLACE VIEW drift AS
WITH changes AS (
    SELECT *, value - first_value(value) OVER (PARTITION BY run, topic, mode, stance ORDER BY step) AS change
    FROM stance_curve
), per_curve AS (
    SELECT run, topic, mode, stance,
           min(step) AS first_step, max(step) AS last_step, count(*) AS n_checkpoints,
           arg_min(value, step) AS first_value, arg_max(value, step) AS last_value,
           max(abs(change)) AS max_abs_change
    FROM changes GROUP BY ALL
), extremum AS (
    SELECT run, topic, mode, stance, min(c.step) AS extremum_step
    FROM changes c JOIN per_curve p USING (run, topic, mode, stance)
    WHERE abs(c.change) = p.max_abs_change
    GROUP BY ALL
), reached AS (
    SELECT run, topic, mode, stance, min(c.step) AS reached_step
    FROM changes c JOIN per_curve p USING (run, topic, mode, stance)
    WHERE p.max_abs_change > 0 AND abs(c.change) >= {extremum_fraction} * p.max_abs_change
    GROUP BY ALL
)
SELECT run, topic, mode, stance,
       last_value - first_value AS magnitude,
       (reached_step - first_step) / nullif(last_step - first_step, 0) AS drift_time,
       first_value, last_value, max_abs_change, extremum_step, reached_step,
       first_step, last_step, n_checkpoints
FROM per_curve LEFT JOIN extremum USING (run, topic, mode, stance) LEFT JOIN reached USING (run, topic, mode, stance);
