"""SimPO (TRL CPOTrainer, loss_type="simpo", cpo_alpha=0) from an SFT checkpoint: `python -m posttrain.pref.simpo --help`."""

from posttrain.pref.cli import main

if __name__ == "__main__":
    main("simpo")
