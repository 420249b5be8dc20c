"""SFT stage (TRL SFTTrainer); entry point `python -m posttrain.sft`."""
