"""The study database: Parquet rows from every job -> results/study.duckdb (tables + SQL views)."""
