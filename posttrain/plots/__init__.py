"""Figures from the study database (seaborn PNGs under results/plots/)."""
