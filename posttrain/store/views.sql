-- Derived views of study.duckdb. {extremum_fraction} is filled in from the config's drift section,
-- {label_mass_floor} from probes.values.forced_choice.label_mass_floor.
-- The *_lo / *_hi columns are bootstrap percentile intervals (tables stance_ci and drift_ci, computed at
-- build time by posttrain/store/bootstrap.py: prompts resampled, and sample ids within each prompt, both once for
-- all checkpoints of a run). Topic '(all)' in stance_ci / drift_ci is the mean over topics.

-- How much of the next-token probability forced choice's label words get, per run, checkpoint and topic (mean
-- over prompts and option orders). Below the floor the model mostly answers with other words, and the
-- renormalised label distribution says little about its stance: such a checkpoint is flagged here, in
-- stance_by_topic, and in drift (no drift time over it).
CREATE OR REPLACE VIEW label_mass AS
SELECT run, step, topic, avg(label_mass) AS mean_label_mass, min(label_mass) AS min_label_mass,
       avg(label_mass) < {label_mass_floor} AS below_floor, {label_mass_floor}::DOUBLE AS label_mass_floor,
       count(*) AS n_prompts
FROM stance_samples WHERE mode = 'forced_choice' GROUP BY ALL;

-- Mean stance distribution per topic at every checkpoint (over the topic's prompts and samples). For forced
-- choice, p_* are calibrated and averaged over option orders; raw_p_* are the uncalibrated means.
CREATE OR REPLACE VIEW stance_by_topic AS
WITH means AS (
    SELECT s.run, s.step, c.progress, s.topic, s.mode,
           avg(s.p_support) AS p_support, avg(s.p_neutral) AS p_neutral, avg(s.p_oppose) AS p_oppose,
           avg(s.p_support) - avg(s.p_oppose) AS balance,
           avg(s.raw_p_support) AS raw_p_support, avg(s.raw_p_neutral) AS raw_p_neutral,
           avg(s.raw_p_oppose) AS raw_p_oppose, avg(s.label_mass) AS mean_label_mass,
           avg(s.label_mass) FILTER (s.mode = 'forced_choice') < {label_mass_floor} AS low_label_mass,
           count(DISTINCT s.prompt_id) AS n_prompts, count(*) AS n_samples
    FROM stance_samples s JOIN checkpoints c USING (run, step)
    GROUP BY ALL
), ci AS (
    SELECT run, step, topic, mode,
           any_value(lo) FILTER (stance = 'support') AS p_support_lo, any_value(hi) FILTER (stance = 'support') AS p_support_hi,
           any_value(lo) FILTER (stance = 'neutral') AS p_neutral_lo, any_value(hi) FILTER (stance = 'neutral') AS p_neutral_hi,
           any_value(lo) FILTER (stance = 'oppose') AS p_oppose_lo, any_value(hi) FILTER (stance = 'oppose') AS p_oppose_hi,
           any_value(lo) FILTER (stance = 'balance') AS balance_lo, any_value(hi) FILTER (stance = 'balance') AS balance_hi
    FROM stance_ci GROUP BY ALL
)
SELECT * FROM means LEFT JOIN ci USING (run, step, topic, mode);

-- One row per run, checkpoint, topic, probe mode and read-out (each stance, and the balance p_support - p_oppose):
-- the curve, with its interval.
CREATE OR REPLACE VIEW stance_curve AS
SELECT m.run, m.step, c.progress, m.topic, m.mode, m.stance, m.value, ci.lo, ci.hi
FROM (
    SELECT run, step, topic, mode, 'support' AS stance, avg(p_support) AS value FROM stance_samples GROUP BY ALL
    UNION ALL SELECT run, step, topic, mode, 'neutral', avg(p_neutral) FROM stance_samples GROUP BY ALL
    UNION ALL SELECT run, step, topic, mode, 'oppose', avg(p_oppose) FROM stance_samples GROUP BY ALL
    UNION ALL SELECT run, step, topic, mode, 'balance', avg(p_support) - avg(p_oppose) FROM stance_samples GROUP BY ALL
) m JOIN checkpoints c USING (run, step) LEFT JOIN stance_ci ci USING (run, step, topic, mode, stance);

-- The same, averaged over topics (each topic weighs the same), with its interval (a stratified bootstrap).
CREATE OR REPLACE VIEW stance_overall AS
SELECT m.run, m.step, m.progress, m.mode, m.stance, m.value, ci.lo, ci.hi, m.n_topics
FROM (SELECT run, step, progress, mode, stance, avg(value) AS value, count(*) AS n_topics FROM stance_curve GROUP BY ALL) m
    LEFT JOIN stance_ci ci ON ci.run = m.run AND ci.step = m.step AND ci.mode = m.mode AND ci.stance = m.stance
                              AND ci.topic = '(all)';

-- Drift over each run (= one stage: its step 0 is the stage's starting weights).
--   magnitude           = value at the last checkpoint - value at the first (signed)
--   significant         = the magnitude's bootstrap interval excludes 0 (NULL without an interval)
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
-- drift_all holds both; drift (per topic) and drift_overall (topic '(all)', the mean over topics) split it.
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
), low_mass AS (
    SELECT run, topic, 'forced_choice' AS mode, count(*) FILTER (below_floor) AS low_label_mass_checkpoints
    FROM label_mass GROUP BY ALL
    UNION ALL  -- the mean over topics: checkpoints whose mean mass over topics is below the floor
    SELECT run, '(all)', 'forced_choice', count(*) FILTER (mass < {label_mass_floor})
    FROM (SELECT run, step, avg(mean_label_mass) AS mass FROM label_mass GROUP BY ALL) GROUP BY ALL
), screened AS (
    SELECT *, ci.magnitude_lo > 0 OR ci.magnitude_hi < 0 AS significant,
           coalesce(low_label_mass_checkpoints, 0) = 0 AND n_checkpoints > 2 AS timed
    FROM per_curve LEFT JOIN extremum USING (run, topic, mode, stance) LEFT JOIN reached USING (run, topic, mode, stance)
        LEFT JOIN settled USING (run, topic, mode, stance) LEFT JOIN drift_ci ci USING (run, topic, mode, stance)
        LEFT JOIN low_mass USING (run, topic, mode)
)
SELECT run, topic, mode, stance,
       last_value - first_value AS magnitude, magnitude_lo, magnitude_hi, significant,
       CASE WHEN significant AND timed THEN (reached_step - first_step) / nullif(last_step - first_step, 0) END
           AS drift_time,
       CASE WHEN significant AND timed THEN drift_time_lo END AS drift_time_lo,
       CASE WHEN significant AND timed THEN drift_time_hi END AS drift_time_hi,
       CASE WHEN significant AND timed THEN (settled_step - first_step) / nullif(last_step - first_step, 0) END
           AS drift_time_settled,
       CASE WHEN significant AND timed THEN drift_time_settled_lo END AS drift_time_settled_lo,
       CASE WHEN significant AND timed THEN drift_time_settled_hi END AS drift_time_settled_hi,
       CASE WHEN max_abs_change = 0 THEN 'the curve never moves'
            WHEN n_checkpoints < 2 THEN 'one checkpoint'
            WHEN n_checkpoints = 2 THEN 'two checkpoints: the curve reaches its change at the last one by construction'
            WHEN NOT timed THEN 'forced choice: label mass below the floor at ' || low_label_mass_checkpoints
                                || ' checkpoint(s) (view label_mass)'
            WHEN significant IS NULL THEN 'no interval for the magnitude (no bootstrap rows)'
            WHEN NOT significant THEN 'the magnitude''s interval includes 0'
       END AS drift_time_null_reason, low_label_mass_checkpoints,
       first_value, last_value, max_abs_change, extremum_step, extremum_change, reached_step, settled_step,
       first_step, last_step, n_checkpoints, n_resamples, confidence
FROM screened;

CREATE OR REPLACE VIEW drift AS SELECT * FROM drift_all WHERE topic <> '(all)';
CREATE OR REPLACE VIEW drift_overall AS SELECT * EXCLUDE (topic) FROM drift_all WHERE topic = '(all)';

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

-- Drift over training seeds: the runs a config replicates with `seeds:` (runs.replicate_of; a run without seeds
-- is its own, one-seed group), per topic and for the mean over topics ('(all)'). magnitude is the mean over
-- seeds. Its interval combines the spread between seeds with the probe's own uncertainty:
--   half-width = sqrt((t x sd_between_seeds / sqrt(n_seeds))^2 + (mean half-width of the seeds' bootstrap intervals)^2)
-- with t the Student quantile at the bootstrap's confidence and n_seeds - 1 degrees of freedom (table t_quantiles).
-- The seeds share their prompts and sample seeds, so the bootstrap part is not in the spread between seeds.
-- With one seed it is that run's bootstrap interval, and `interval` says that between-seed variance is not in it.
CREATE OR REPLACE VIEW drift_over_seeds AS
WITH per_run AS (
    SELECT r.replicate_of, r.seed, d.*
    FROM drift_all d JOIN runs r USING (run)
), grouped AS (
    SELECT replicate_of, topic, mode, stance, count(*) AS n_seeds, list(seed ORDER BY seed) AS seeds,
           list(run ORDER BY run) AS runs, avg(magnitude) AS magnitude, stddev_samp(magnitude) AS sd_between_seeds,
           avg((magnitude_hi - magnitude_lo) / 2) AS bootstrap_half_width,
           avg(drift_time) AS drift_time, count(drift_time) AS n_seeds_with_drift_time,
           any_value(confidence) AS confidence
    FROM per_run GROUP BY ALL
), widths AS (
    SELECT g.*, CASE WHEN n_seeds > 1 THEN sqrt((t.t * sd_between_seeds / sqrt(n_seeds)) ** 2
                                                + bootstrap_half_width ** 2)
                     ELSE bootstrap_half_width END AS half_width
    FROM grouped g LEFT JOIN t_quantiles t ON t.df = g.n_seeds - 1
)
SELECT replicate_of AS run, topic, mode, stance, n_seeds, seeds, runs, magnitude,
       magnitude - half_width AS magnitude_lo, magnitude + half_width AS magnitude_hi,
       magnitude - half_width > 0 OR magnitude + half_width < 0 AS significant,
       sd_between_seeds, bootstrap_half_width, drift_time, n_seeds_with_drift_time,
       CASE WHEN n_seeds > 1 THEN 'seeds and bootstrap'
            ELSE 'bootstrap of one seed: between-seed variance not in it' END AS interval, confidence
FROM widths;

-- The generation read-out per topic corrected for its judge's confusion (table judge_correction: the inverse of
-- the judge's soft confusion matrix on its validation answers; the real answers where it was validated on them).
-- A judge that calls 21 % of opposing answers support inflates p_support and deflates p_oppose; this undoes
-- that on average. Raw means (stance_by_topic) stay the default: the correction carries the validation set's
-- own sampling error, and can leave [0, 1] where the judge is unsure.
CREATE OR REPLACE VIEW stance_by_topic_corrected AS
WITH judged AS (
    SELECT run, step, topic, judge, 'support' AS judged, avg(p_support) AS value
    FROM stance_samples WHERE mode = 'generation' GROUP BY ALL
    UNION ALL SELECT run, step, topic, judge, 'neutral', avg(p_neutral)
    FROM stance_samples WHERE mode = 'generation' GROUP BY ALL
    UNION ALL SELECT run, step, topic, judge, 'oppose', avg(p_oppose)
    FROM stance_samples WHERE mode = 'generation' GROUP BY ALL
), source AS (
    SELECT judge, CASE WHEN bool_or(split = 'real') THEN 'real' ELSE min(split) END AS split
    FROM judge_correction GROUP BY judge
)
SELECT q.run, q.step, q.topic, q.judge, s.split AS corrected_with,
       sum(q.value * c.weight) FILTER (c.true_stance = 'support') AS p_support,
       sum(q.value * c.weight) FILTER (c.true_stance = 'neutral') AS p_neutral,
       sum(q.value * c.weight) FILTER (c.true_stance = 'oppose') AS p_oppose
FROM judged q JOIN source s USING (judge)
    JOIN judge_correction c ON c.judge = q.judge AND c.split = s.split AND c.judged = q.judged
GROUP BY ALL;
