"""SFT stage (TRL SFTTrainer); the `sft` stage (posttrain.stages)."""
