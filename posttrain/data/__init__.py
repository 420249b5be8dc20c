"""Datasets: loading and normalising chat data, and the project's own SFT data generator.

The `data` stage (posttrain.data.prepare) prepares one dataset of the config.
"""
