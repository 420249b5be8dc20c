"""Preference stages on TRL 1.12.0, each starting from an SFT checkpoint: DPO (`python -m posttrain.pref.dpo`)
and SimPO (`python -m posttrain.pref.simpo`). They share the SFT stage's checkpointing and argument wiring."""
