"""Preference stages (DPO, SimPO, PPO with a reward model) on TRL 1.12.0, starting from SFT checkpoints.

Not built yet (tracked in the issue on preference stages); the SFT stage's checkpointing
(posttrain/checkpointing.py) and argument wiring (posttrain/sft/train.py:training_args) are meant to be shared.
"""
