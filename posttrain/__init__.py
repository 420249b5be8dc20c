"""posttrain: trace what post-training does to a language model, checkpoint by checkpoint."""

import os

# Jobs run offline (compute nodes, CI); TRL and the hub client otherwise ping the network per trainer.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
