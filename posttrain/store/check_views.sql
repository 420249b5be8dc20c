-- Views over dataset_checks: does a training set teach the value probe its answers (posttrain/data/contamination.py)?

-- Per dataset: how many replies open with a label word of the probe, by position (bare: nothing else; first:
-- the word then a break, "Support: because ..."; sentence: the word opens a running sentence), and how many of
-- those answer a request that names the label words; how many questions are near-copies of a probe question,
-- by the check that fired (word-bigram Dice only, MiniLM embedding cosine only, both). All zero is clean.
CREATE OR REPLACE VIEW dataset_contamination AS
SELECT dataset, count(DISTINCT row) AS n_rows, count(*) AS n_replies,
       count(label_answer) AS n_label_answers,
       count(label_answer) FILTER (label_position = 'bare') AS n_label_bare,
       count(label_answer) FILTER (label_position = 'first') AS n_label_first,
       count(label_answer) FILTER (label_position = 'sentence') AS n_label_sentence,
       count(label_answer) FILTER (asks_for_label) AS n_label_answers_to_label_requests,
       count(DISTINCT row) FILTER (near_copy) AS n_near_copies,
       count(DISTINCT row) FILTER (near_copy_by = 'dice') AS n_near_copies_dice_only,
       count(DISTINCT row) FILTER (near_copy_by = 'embedding') AS n_near_copies_embedding_only,
       count(DISTINCT row) FILTER (near_copy_by = 'both') AS n_near_copies_both,
       max(probe_similarity) AS max_probe_similarity,
       max(probe_cosine) AS max_probe_cosine,
       count(label_answer) = 0 AND count(*) FILTER (near_copy) = 0 AS clean
FROM dataset_checks GROUP BY dataset;

-- The flagged rows themselves, with their text: what to remove or rewrite.
CREATE OR REPLACE VIEW contaminated_rows AS
SELECT dataset, row, side, topic,
       CASE WHEN label_answer IS NOT NULL AND near_copy THEN 'label answer, near-copy'
            WHEN label_answer IS NOT NULL THEN 'label answer' ELSE 'near-copy' END AS finding,
       label_answer, label_position, asks_for_label, near_copy_by, probe_prompt_id, probe_similarity,
       cosine_prompt_id, probe_cosine, question, reply
FROM dataset_checks WHERE label_answer IS NOT NULL OR near_copy
ORDER BY dataset, row, side;
