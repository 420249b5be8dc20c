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
