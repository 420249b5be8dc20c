"""PPO (TRL 1.12.0 trl.experimental.ppo.PPOTrainer) from an SFT checkpoint, rewarded by a trained reward model:
`python -m posttrain.pref.ppo --help`. The spec's `reward_model_path` names the reward model folder."""

from posttrain.pref.cli import main

if __name__ == "__main__":
    main("ppo")
