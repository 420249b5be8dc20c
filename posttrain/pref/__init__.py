"""Preference stages on TRL 1.12.0, each starting from an SFT checkpoint: DPO (`python -m posttrain.pref.dpo`),
SimPO (`python -m posttrain.pref.simpo`) and PPO (`python -m posttrain.pref.ppo`) with its reward model
(`python -m posttrain.pref.reward`). They share the SFT stage's checkpointing and argument wiring."""
