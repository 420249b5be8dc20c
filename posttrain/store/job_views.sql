-- Where the time of the study went: job_benchmarks (Snakemake's benchmark file of every job the store
-- depends on) summed per rule. Job-seconds, not wall time of the study: jobs that ran side by side both count.
CREATE OR REPLACE VIEW job_time_by_rule AS
SELECT rule,
       count(*) AS jobs,
       sum(wall_s) AS wall_s,
       sum(wall_s) / nullif(sum(sum(wall_s)) OVER (), 0) AS share,
       avg(wall_s) AS mean_wall_s,
       max(wall_s) AS max_wall_s,
       sum(cpu_time_s) AS cpu_time_s,
       max(max_rss_mb) AS max_rss_mb
FROM job_benchmarks
GROUP BY rule
ORDER BY wall_s DESC;
