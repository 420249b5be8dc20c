-- Drift over training seeds (posttrain/store/build.py creates it after drift_all; view drift_over_seeds adds the
-- q-values, significance_views.sql). {estimand_fixed} and {estimand_population} are bootstrap.ESTIMANDS'.

-- Drift over training seeds: the runs a config replicates with `seeds:` (runs.replicate_of; a run without seeds is
-- its own, one-seed group), per topic and for the mean over topics ('(all)'). Table seeds_ci holds both estimands
-- over seeds (posttrain/store/bootstrap.py; docs/methods.md: Estimands and intervals):
--   *_fixed       (b) the mean over these seeds, conditional on them: the seeds averaged inside each replicate
--   *_population  (c) the mean over a population of seeds (>= 3 seeds; else NULL and population_null_reason)
-- magnitude_lo / _hi are the headline interval: (c) where it exists, else (b); `estimand` says which.
-- drift_time is the mean over all seeds of each seed's own drift time (never only the significant seeds), given
-- where the headline magnitude is significant and each seed was probed at more than two checkpoints.
-- Forced choice below the label-mass floor in any seed is withheld, as in drift. q_value (view drift_over_seeds):
-- the Benjamini-Hochberg q-value of p_value over the replicated run's topics x read-outs x modes (per topic) or
-- its read-outs x modes (the mean over topics).
CREATE OR REPLACE VIEW drift_over_seeds_all AS
WITH members AS (
    SELECT r.replicate_of AS run, d.topic, d.mode, d.stance, min(d.n_checkpoints) AS n_checkpoints,
           bool_or(d.withheld_reason IS NOT NULL) AS is_withheld
    FROM drift_all d JOIN runs r ON r.run = d.run GROUP BY ALL
), headline AS (
    SELECT s.*, m.n_checkpoints, coalesce(m.is_withheld, false) AS is_withheld,
           magnitude_lo_population IS NOT NULL AS has_population
    FROM seeds_ci s LEFT JOIN members m USING (run, topic, mode, stance)
), tested AS (
    SELECT *,
           CASE WHEN has_population THEN magnitude_lo_population ELSE magnitude_lo_fixed END AS lo,
           CASE WHEN has_population THEN magnitude_hi_population ELSE magnitude_hi_fixed END AS hi,
           CASE WHEN has_population THEN magnitude_p_population ELSE magnitude_p_fixed END AS p,
           CASE WHEN has_population THEN drift_time_lo_population ELSE drift_time_lo_fixed END AS dt_lo,
           CASE WHEN has_population THEN drift_time_hi_population ELSE drift_time_hi_fixed END AS dt_hi
    FROM headline
), verdict AS (
    SELECT *, CASE WHEN NOT is_withheld THEN lo > 0 OR hi < 0 END AS sig FROM tested
)
SELECT v.run, v.topic, v.mode, v.stance, v.n_seeds, v.seeds, v.runs,
       CASE WHEN NOT is_withheld THEN v.magnitude END AS magnitude,
       CASE WHEN NOT is_withheld THEN v.lo END AS magnitude_lo, CASE WHEN NOT is_withheld THEN v.hi END AS magnitude_hi,
       CASE WHEN has_population THEN '{estimand_population}' ELSE '{estimand_fixed}' END AS estimand,
       v.sig AS significant, CASE WHEN NOT is_withheld THEN v.p END AS p_value,
       CASE WHEN NOT is_withheld THEN magnitude_lo_fixed END AS magnitude_lo_fixed,
       CASE WHEN NOT is_withheld THEN magnitude_hi_fixed END AS magnitude_hi_fixed,
       CASE WHEN NOT is_withheld THEN magnitude_lo_population END AS magnitude_lo_population,
       CASE WHEN NOT is_withheld THEN magnitude_hi_population END AS magnitude_hi_population,
       CASE WHEN NOT is_withheld THEN magnitude_tost_lo_fixed END AS magnitude_tost_lo_fixed,
       CASE WHEN NOT is_withheld THEN magnitude_tost_hi_fixed END AS magnitude_tost_hi_fixed,
       CASE WHEN NOT is_withheld THEN magnitude_tost_lo_population END AS magnitude_tost_lo_population,
       CASE WHEN NOT is_withheld THEN magnitude_tost_hi_population END AS magnitude_tost_hi_population,
       magnitude_se_population, magnitude_df_population, sqrt(magnitude_s2_population) AS sd_between_seeds,
       magnitude_shared_population AS shared_prompt_variance, magnitude_own_population AS own_sampling_variance,
       null_reason AS population_null_reason,
       CASE WHEN v.sig AND n_checkpoints > 2 THEN v.drift_time END AS drift_time,
       CASE WHEN v.sig AND n_checkpoints > 2 THEN v.dt_lo END AS drift_time_lo,
       CASE WHEN v.sig AND n_checkpoints > 2 THEN v.dt_hi END AS drift_time_hi,
       CASE WHEN is_withheld THEN 'withheld: forced choice below the label-mass floor in a seed (view drift)'
            WHEN n_checkpoints <= 2 THEN 'two checkpoints: the curve reaches its change at the last one by construction'
            WHEN v.drift_time IS NULL THEN 'a seed''s curve never moves'
            WHEN NOT v.sig THEN 'the magnitude''s interval includes 0'
       END AS drift_time_null_reason,
       (SELECT any_value(confidence) FROM drift_ci) AS confidence
FROM verdict v;
