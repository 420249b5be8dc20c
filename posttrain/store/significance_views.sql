-- The drift views with their q-values (tables drift_q and seeds_q, posttrain/store/significance.py), created
-- after those tables.
-- drift (per topic) and drift_overall (topic '(all)', the mean over topics) split drift_all, with q_value: the
-- Benjamini-Hochberg q-value of p_value over the family of the run's tests, its topics x read-outs x modes
-- (per topic) or its read-outs x modes (the mean over topics) (table drift_q; withheld cells are not tested).
-- Stars in the findings and on the summary page read q_value.
CREATE OR REPLACE VIEW drift AS
SELECT d.*, q.q_value, q.significant_q FROM drift_all d LEFT JOIN drift_q q USING (run, topic, mode, stance)
WHERE d.topic <> '(all)';
CREATE OR REPLACE VIEW drift_overall AS
SELECT d.* EXCLUDE (topic), q.q_value, q.significant_q FROM drift_all d LEFT JOIN drift_q q USING (run, topic, mode, stance)
WHERE d.topic = '(all)';

CREATE OR REPLACE VIEW drift_over_seeds AS
SELECT d.*, q.q_value, q.significant_q FROM drift_over_seeds_all d LEFT JOIN seeds_q q USING (run, topic, mode, stance);

