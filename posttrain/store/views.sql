-- Derived views of study.duckdb. {extremum_fraction} is filled in from the config's drift section,
-- {label_mass_floor} and {label_mass_min_share} from probes.values.forced_choice.
-- The *_lo / *_hi columns are bootstrap percentile intervals of estimand (a), one run with prompts and samples
-- varying (tables stance_ci and drift_ci, computed at build time by posttrain/store/bootstrap.py: a cluster
-- bootstrap over prompts, stratified by topic, with one draw shared by every checkpoint, seed and run). Each view
-- with an interval names its estimand in column `estimand`. Topic '(all)' is the mean over topics.

-- How much of the next-token probability forced choice's label words get, per run, checkpoint and topic. The floor
-- applies per prompt: share_above_floor is the share of the topic's prompts (each averaged over option orders)
-- whose label mass reaches {label_mass_floor}. Below it the model mostly answers with other words, and the
-- renormalised label distribution says little about its stance. A checkpoint where fewer than
-- {label_mass_min_share} of a topic's prompts reach the floor is below_floor: forced-choice drift over it is
-- withheld (view drift: magnitude, interval and drift time NULL, with the reason). content_free_label_mass is
-- the label mass on the content-free inputs calibration divides by (NULL in probe files from before it was kept).
CREATE OR REPLACE VIEW label_mass AS
SELECT run, step, topic, avg(label_mass) AS mean_label_mass, min(label_mass) AS min_label_mass,
       avg((label_mass >= {label_mass_floor})::INTEGER) AS share_above_floor,
       avg((label_mass >= {label_mass_floor})::INTEGER) < {label_mass_min_share} AS below_floor,
       {label_mass_floor}::DOUBLE AS label_mass_floor, {label_mass_min_share}::DOUBLE AS min_share_above_floor,
       avg(content_free_label_mass) AS content_free_label_mass, count(*) AS n_prompts
FROM stance_samples WHERE mode = 'forced_choice' GROUP BY ALL;

-- Mean stance distribution per topic at every checkpoint (over the topic's prompts and samples). For forced
-- choice, p_* are calibrated and averaged over option orders; raw_p_* are the uncalibrated means.
CREATE OR REPLACE VIEW stance_by_topic AS
WITH per_prompt AS (  -- each prompt weighs the same, whatever its number of samples (as in the bootstrap)
    SELECT run, step, topic, mode, prompt_id, avg(p_support) AS p_support, avg(p_neutral) AS p_neutral,
           avg(p_oppose) AS p_oppose, avg(raw_p_support) AS raw_p_support, avg(raw_p_neutral) AS raw_p_neutral,
           avg(raw_p_oppose) AS raw_p_oppose, avg(label_mass) AS label_mass, count(*) AS n_samples
    FROM stance_samples GROUP BY ALL
), means AS (
    SELECT s.run, s.step, c.progress, s.topic, s.mode,
           avg(s.p_support) AS p_support, avg(s.p_neutral) AS p_neutral, avg(s.p_oppose) AS p_oppose,
           avg(s.p_support) - avg(s.p_oppose) AS balance,
           avg(s.raw_p_support) AS raw_p_support, avg(s.raw_p_neutral) AS raw_p_neutral,
           avg(s.raw_p_oppose) AS raw_p_oppose, avg(s.label_mass) AS mean_label_mass,
           count(*) AS n_prompts, sum(s.n_samples) AS n_samples
    FROM per_prompt s JOIN checkpoints c USING (run, step)
    GROUP BY ALL
), ci AS (
    SELECT run, step, topic, mode,
           any_value(lo) FILTER (stance = 'support') AS p_support_lo, any_value(hi) FILTER (stance = 'support') AS p_support_hi,
           any_value(lo) FILTER (stance = 'neutral') AS p_neutral_lo, any_value(hi) FILTER (stance = 'neutral') AS p_neutral_hi,
           any_value(lo) FILTER (stance = 'oppose') AS p_oppose_lo, any_value(hi) FILTER (stance = 'oppose') AS p_oppose_hi,
           any_value(lo) FILTER (stance = 'balance') AS balance_lo, any_value(hi) FILTER (stance = 'balance') AS balance_hi
    FROM stance_ci GROUP BY ALL
)
SELECT m.*, ci.* EXCLUDE (run, step, topic, mode), coalesce(l.below_floor, false) AS low_label_mass,
       l.share_above_floor, '{estimand_run}' AS estimand
FROM means m LEFT JOIN ci USING (run, step, topic, mode)
    LEFT JOIN label_mass l ON l.run = m.run AND l.step = m.step AND l.topic = m.topic AND m.mode = 'forced_choice';

-- One row per run, checkpoint, topic, probe mode and read-out (each stance, and the balance p_support - p_oppose):
-- the curve, with its interval.
CREATE OR REPLACE VIEW stance_curve AS
WITH per_prompt AS (
    SELECT run, step, topic, mode, prompt_id, avg(p_support) AS s, avg(p_neutral) AS n, avg(p_oppose) AS o
    FROM stance_samples GROUP BY ALL
)
SELECT m.run, m.step, c.progress, m.topic, m.mode, m.stance, m.value, ci.lo, ci.hi, '{estimand_run}' AS estimand
FROM (
    SELECT run, step, topic, mode, 'support' AS stance, avg(s) AS value FROM per_prompt GROUP BY ALL
    UNION ALL SELECT run, step, topic, mode, 'neutral', avg(n) FROM per_prompt GROUP BY ALL
    UNION ALL SELECT run, step, topic, mode, 'oppose', avg(o) FROM per_prompt GROUP BY ALL
    UNION ALL SELECT run, step, topic, mode, 'balance', avg(s) - avg(o) FROM per_prompt GROUP BY ALL
) m JOIN checkpoints c USING (run, step) LEFT JOIN stance_ci ci USING (run, step, topic, mode, stance);

-- The same, averaged over topics (each topic weighs the same), with its interval (a stratified bootstrap).
CREATE OR REPLACE VIEW stance_overall AS
SELECT m.run, m.step, m.progress, m.mode, m.stance, m.value, ci.lo, ci.hi, m.n_topics, '{estimand_run}' AS estimand
FROM (SELECT run, step, progress, mode, stance, avg(value) AS value, count(*) AS n_topics FROM stance_curve GROUP BY ALL) m
    LEFT JOIN stance_ci ci ON ci.run = m.run AND ci.step = m.step AND ci.mode = m.mode AND ci.stance = m.stance
                              AND ci.topic = '(all)';

-- Drift over each run (= one stage: its step 0 is the stage's starting weights).
--   magnitude           = value at the last checkpoint - value at the first (signed)
--   significant         = the magnitude's bootstrap interval excludes 0 (NULL without an interval, or withheld);
--                         p_value is its two-sided bootstrap p-value (drift and drift_overall add BH q-values)
--   withheld_reason     = forced choice below the label-mass floor at some checkpoint (view label_mass): the
--                         magnitude, its interval, p-value and drift times are then NULL
--   extremum            = the first checkpoint whose change from the first is largest in absolute value
--   drift_time          = (first step whose change has the extremum's sign and at least {extremum_fraction} x its
--                         size - first step) / (last step - first step), in [0, 1]. A jump the other way does
--                         not count: +0.15 at step 1 on a curve that ends at -0.152 is not the drift.
--   drift_time_settled  = the same for the first step after which the curve stays within
--                         (1 - {extremum_fraction}) x |change at the extremum| of its final value: a spike that
--                         passes the threshold early and falls back does not count
-- Both drift times (and their intervals) are given only where `significant`: the time a curve takes to reach
-- a change that may be noise is noise. A run probed at its first and last step only has no drift time either:
-- it would be 1 by construction. Elsewhere they are NULL and drift_time_null_reason says why;
-- reached_step and settled_step keep the unscreened steps.
-- drift_all holds both; drift (per topic) and drift_overall (topic '(all)', the mean over topics) split it and add
-- the q-values (significance_views.sql).
CREATE OR REPLACE VIEW drift_all AS
WITH curves AS (
    SELECT run, step, topic, mode, stance, value FROM stance_curve
    UNION ALL SELECT run, step, '(all)', mode, stance, value FROM stance_overall
), changes AS (
    SELECT *, value - first_value(value) OVER w AS change, last_value(value) OVER w AS final_value
    FROM curves
    WINDOW w AS (PARTITION BY run, topic, mode, stance ORDER BY step
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
), per_curve AS (
    SELECT run, topic, mode, stance,
           min(step) AS first_step, max(step) AS last_step, count(*) AS n_checkpoints,
           arg_min(value, step) AS first_value, arg_max(value, step) AS last_value,
           max(abs(change)) AS max_abs_change
    FROM changes GROUP BY ALL
), extremum AS (
    SELECT run, topic, mode, stance, min(c.step) AS extremum_step, arg_min(c.change, c.step) AS extremum_change
    FROM changes c JOIN per_curve p USING (run, topic, mode, stance)
    WHERE abs(c.change) = p.max_abs_change
    GROUP BY ALL
), reached AS (
    SELECT run, topic, mode, stance, min(c.step) AS reached_step
    FROM changes c JOIN per_curve p USING (run, topic, mode, stance) JOIN extremum e USING (run, topic, mode, stance)
    WHERE p.max_abs_change > 0 AND sign(e.extremum_change) * c.change >= {extremum_fraction} * p.max_abs_change
    GROUP BY ALL
), outside AS (
    SELECT run, topic, mode, stance,
           max(c.step) FILTER (abs(c.value - c.final_value) > (1 - {extremum_fraction}) * p.max_abs_change + 1e-12)
               AS last_outside_step
    FROM changes c JOIN per_curve p USING (run, topic, mode, stance)
    GROUP BY ALL
), settled AS (
    SELECT run, topic, mode, stance, min(c.step) AS settled_step
    FROM changes c JOIN per_curve p USING (run, topic, mode, stance) JOIN outside o USING (run, topic, mode, stance)
    WHERE p.max_abs_change > 0 AND c.step > coalesce(o.last_outside_step, -1)
    GROUP BY ALL
), withheld AS (  -- forced choice below the label-mass floor at any checkpoint (view label_mass)
    SELECT run, topic, 'forced_choice' AS mode, count(*) FILTER (below_floor) AS low_label_mass_checkpoints
    FROM label_mass GROUP BY ALL
    UNION ALL  -- the mean over topics is withheld where any of its topics is
    SELECT run, '(all)', 'forced_choice', count(DISTINCT step) FILTER (below_floor) FROM label_mass GROUP BY ALL
), screened AS (
    SELECT *, coalesce(low_label_mass_checkpoints, 0) > 0 AS is_withheld
    FROM per_curve LEFT JOIN extremum USING (run, topic, mode, stance) LEFT JOIN reached USING (run, topic, mode, stance)
        LEFT JOIN settled USING (run, topic, mode, stance) LEFT JOIN drift_ci ci USING (run, topic, mode, stance)
        LEFT JOIN withheld USING (run, topic, mode)
), tested AS (
    SELECT *, CASE WHEN NOT is_withheld THEN magnitude_lo > 0 OR magnitude_hi < 0 END AS significant,
           NOT is_withheld AND n_checkpoints > 2 AS timed
    FROM screened
)
SELECT run, topic, mode, stance,
       CASE WHEN NOT is_withheld THEN last_value - first_value END AS magnitude,
       CASE WHEN NOT is_withheld THEN magnitude_lo END AS magnitude_lo,
       CASE WHEN NOT is_withheld THEN magnitude_hi END AS magnitude_hi,
       significant, CASE WHEN NOT is_withheld THEN magnitude_p END AS p_value,
       CASE WHEN NOT is_withheld THEN magnitude_tost_lo END AS magnitude_tost_lo,
       CASE WHEN NOT is_withheld THEN magnitude_tost_hi END AS magnitude_tost_hi,
       CASE WHEN is_withheld THEN 'forced choice: fewer than {label_mass_min_share} of the prompts reach the label-mass '
                                  || 'floor at ' || low_label_mass_checkpoints || ' checkpoint(s) (view label_mass)'
       END AS withheld_reason,
       CASE WHEN significant AND timed THEN (reached_step - first_step) / nullif(last_step - first_step, 0) END
           AS drift_time,
       CASE WHEN significant AND timed THEN drift_time_lo END AS drift_time_lo,
       CASE WHEN significant AND timed THEN drift_time_hi END AS drift_time_hi,
       CASE WHEN significant AND timed THEN (settled_step - first_step) / nullif(last_step - first_step, 0) END
           AS drift_time_settled,
       CASE WHEN significant AND timed THEN drift_time_settled_lo END AS drift_time_settled_lo,
       CASE WHEN significant AND timed THEN drift_time_settled_hi END AS drift_time_settled_hi,
       CASE WHEN is_withheld THEN 'withheld: forced choice below the label-mass floor (withheld_reason)'
            WHEN max_abs_change = 0 THEN 'the curve never moves'
            WHEN n_checkpoints < 2 THEN 'one checkpoint'
            WHEN n_checkpoints = 2 THEN 'two checkpoints: the curve reaches its change at the last one by construction'
            WHEN significant IS NULL THEN 'no interval for the magnitude (no bootstrap rows)'
            WHEN NOT significant THEN 'the magnitude''s interval includes 0'
       END AS drift_time_null_reason, low_label_mass_checkpoints,
       first_value, last_value, max_abs_change, extremum_step, extremum_change, reached_step, settled_step,
       first_step, last_step, n_checkpoints, n_resamples, confidence, '{estimand_run}' AS estimand
FROM tested;

-- Agreement of the two probe modes at every checkpoint probed both ways: the Pearson correlation, across
-- topics, of the forced-choice and the generation + judge stance (one row per run, step and stance).
CREATE OR REPLACE VIEW probe_agreement AS
SELECT f.run, f.step, f.stance, corr(f.value, g.value) AS r_across_topics,
       avg(abs(f.value - g.value)) AS mean_abs_diff, count(*) AS n_topics
FROM stance_curve f JOIN stance_curve g USING (run, step, topic, stance)
WHERE f.mode = 'forced_choice' AND g.mode = 'generation'
GROUP BY ALL;

-- The same within each topic: correlation across the topic's prompts (generation samples averaged per prompt).
CREATE OR REPLACE VIEW probe_agreement_by_topic AS
WITH per_prompt AS (
    SELECT run, step, topic, prompt_id, mode, avg(p_support) AS support, avg(p_neutral) AS neutral,
           avg(p_oppose) AS oppose
    FROM stance_samples GROUP BY ALL
), paired AS (
    SELECT f.run, f.step, f.topic, f.prompt_id,
           f.support AS f_support, g.support AS g_support, f.neutral AS f_neutral, g.neutral AS g_neutral,
           f.oppose AS f_oppose, g.oppose AS g_oppose
    FROM per_prompt f JOIN per_prompt g USING (run, step, topic, prompt_id)
    WHERE f.mode = 'forced_choice' AND g.mode = 'generation'
)
SELECT run, step, topic, 'support' AS stance, corr(f_support, g_support) AS r_across_prompts, count(*) AS n_prompts
FROM paired GROUP BY ALL
UNION ALL SELECT run, step, topic, 'neutral', corr(f_neutral, g_neutral), count(*) FROM paired GROUP BY ALL
UNION ALL SELECT run, step, topic, 'oppose', corr(f_oppose, g_oppose), count(*) FROM paired GROUP BY ALL;
