"""DPO (TRL DPOTrainer) from an SFT checkpoint: `python -m posttrain.pref.dpo --help`."""

from posttrain.pref.cli import main

if __name__ == "__main__":
    main("dpo")
