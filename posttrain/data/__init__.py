"""Datasets: loading and normalising chat data, and the project's own SFT data generator.

`python -m posttrain.data --spec SPEC --out results/data/<name>.jsonl` prepares one dataset of the config.
"""
