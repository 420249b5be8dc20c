-- Views over datasets_stance (the judged stance of the training data itself).

-- Mean judged stance per dataset, side (response | chosen | rejected) and topic.
CREATE OR REPLACE VIEW dataset_stance_by_topic AS
SELECT dataset, side, topic, avg(p_support) AS p_support, avg(p_neutral) AS p_neutral,
       avg(p_oppose) AS p_oppose, count(*) AS n
FROM datasets_stance GROUP BY ALL;

-- Realised value gap of a preference set: chosen minus rejected, per topic and overall (topic = '(all)'),
-- for each stance, as the judge measures it.
CREATE OR REPLACE VIEW value_gap AS
WITH per_side AS (
    SELECT dataset, coalesce(topic, '(none)') AS topic, side, p_support, p_neutral, p_oppose
    FROM datasets_stance WHERE side IN ('chosen', 'rejected')
    UNION ALL
    SELECT dataset, '(all)', side, p_support, p_neutral, p_oppose
    FROM datasets_stance WHERE side IN ('chosen', 'rejected')
)
SELECT dataset, topic,
       avg(p_support) FILTER (side = 'chosen') - avg(p_support) FILTER (side = 'rejected') AS gap_support,
       avg(p_neutral) FILTER (side = 'chosen') - avg(p_neutral) FILTER (side = 'rejected') AS gap_neutral,
       avg(p_oppose) FILTER (side = 'chosen') - avg(p_oppose) FILTER (side = 'rejected') AS gap_oppose,
       count(*) FILTER (side = 'chosen') AS n_pairs
FROM per_side GROUP BY ALL;

-- The value gap over every pair of a set with its interval: each pair's gap (chosen − rejected, as judged) per
-- stance, the mean over pairs and a Student t interval at the study's confidence (t_quantiles; past 100 degrees
-- of freedom, 100's). The interval covers the pairs' spread, not the judge's error.
CREATE OR REPLACE VIEW value_gap_ci AS
WITH pairs AS (
    SELECT c.dataset, s.stance,
           CASE s.stance WHEN 'support' THEN c.p_support - r.p_support
                         WHEN 'neutral' THEN c.p_neutral - r.p_neutral ELSE c.p_oppose - r.p_oppose END AS gap
    FROM datasets_stance c
    JOIN datasets_stance r ON r.dataset = c.dataset AND r."row" = c."row" AND r.side = 'rejected'
    CROSS JOIN (VALUES ('support'), ('neutral'), ('oppose')) AS s(stance)
    WHERE c.side = 'chosen'
), means AS (
    SELECT dataset, stance, avg(gap) AS gap, stddev_samp(gap) AS sd, count(*) AS n_pairs FROM pairs GROUP BY ALL
)
SELECT m.dataset, m.stance, m.gap, m.gap - t.t * m.sd / sqrt(m.n_pairs) AS gap_lo,
       m.gap + t.t * m.sd / sqrt(m.n_pairs) AS gap_hi, m.n_pairs, t.confidence
FROM means m LEFT JOIN t_quantiles t ON t.df = least(m.n_pairs - 1, 100)
ORDER BY m.dataset, m.stance;
