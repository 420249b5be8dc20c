"""The preference stage on TRL 1.12.0, from an SFT checkpoint: one stage (`pref`), configured per run by its
`algorithm` (dpo: DPOTrainer; simpo: CPOTrainer with loss_type simpo, cpo_alpha 0; ppo: PPOTrainer with a
reward model, trained by the `reward-model` stage). Shared training settings live in posttrain.training."""
