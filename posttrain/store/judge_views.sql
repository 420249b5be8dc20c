-- Views over the judge validation tables (judge_eval: one row per judge, split and metric;
-- judge_predictions: one row per labelled response and judge).
-- The correction's tables (judge_correction, judge_correction_check, judge_calibration, judge_label_agreement,
-- judge_label_passes, judge_label_sensitivity, stance_by_topic_corrected) are built after these views by
-- posttrain/store/judge_correction.py.

-- Confusion matrix of argmax verdicts: rows true stance, columns judged stance.
CREATE OR REPLACE VIEW judge_confusion AS
SELECT judge, split, stance AS true_stance,
       count(*) FILTER (predicted = 'support') AS judged_support,
       count(*) FILTER (predicted = 'neutral') AS judged_neutral,
       count(*) FILTER (predicted = 'oppose') AS judged_oppose,
       count(*) AS n
FROM judge_predictions GROUP BY ALL;
