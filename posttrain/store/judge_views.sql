-- Views over the judge validation tables (judge_eval: one row per judge, split and metric;
-- judge_predictions: one row per labelled response and judge).

-- Confusion matrix of argmax verdicts: rows true stance, columns judged stance.
CREATE OR REPLACE VIEW judge_confusion AS
SELECT judge, split, stance AS true_stance,
       count(*) FILTER (predicted = 'support') AS judged_support,
       count(*) FILTER (predicted = 'neutral') AS judged_neutral,
       count(*) FILTER (predicted = 'oppose') AS judged_oppose,
       count(*) AS n
FROM judge_predictions GROUP BY ALL;
