-- Views over dataset_checks: does a training set teach the value probe its answers (posttrain/data/contamination.py)?

-- Per dataset: how many replies are a bare label word of the probe (and how many of those answer a request that
-- names the label words), and how many questions are near-copies of a probe question. All zero is clean.
CREATE OR REPLACE VIEW dataset_contamination AS
SELECT dataset, count(DISTINCT row) AS n_rows, count(*) AS n_replies,
       count(label_answer) AS n_label_answers,
       count(label_answer) FILTER (asks_for_label) AS n_label_answers_to_label_requests,
       count(DISTINCT row) FILTER (near_copy) AS n_near_copies,
       max(probe_similarity) AS max_probe_similarity,
       count(label_answer) = 0 AND count(*) FILTER (near_copy) = 0 AS clean
FROM dataset_checks GROUP BY dataset;

-- The flagged rows themselves, with their text: what to remove or rewrite.
CREATE OR REPLACE VIEW contaminated_rows AS
SELECT dataset, row, side, topic,
       CASE WHEN label_answer IS NOT NULL AND near_copy THEN 'label answer, near-copy'
            WHEN label_answer IS NOT NULL THEN 'label answer' ELSE 'near-copy' END AS finding,
       label_answer, asks_for_label, probe_prompt_id, probe_similarity, question, reply
FROM dataset_checks WHERE label_answer IS NOT NULL OR near_copy
ORDER BY dataset, row, side;
