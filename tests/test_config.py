"""Config validation: the default validates; a bad key, type, field or reference stops with one message naming it."""

import copy

import pytest
from conftest import REPO, snakemake, write_config

from posttrain.config import ConfigError, load, validate


def test_default_config_validates_and_gets_defaults():
    config = load(REPO / "config" / "config.yaml")
    run = config["sft"]["sft-valuemix"]
    assert run["training"]["seed"] == 0  # a default filled in
    assert run["training"]["learning_rate"] == 5.0e-5  # written 5.0e-5 in YAML, read as a float
    assert config["probes"]["values"]["prompt_set"] == "values-v1"
    assert run["lora"]["enabled"] is False


def test_scientific_notation_without_dot_is_a_float(tmp_path, tiny_config):
    path = tmp_path / "c.yaml"
    path.write_text(write_config(tmp_path / "x.yaml", tiny_config).read_text().replace("0.001", "1e-3"))
    assert load(path)["sft"]["sft-llama"]["training"]["learning_rate"] == 1e-3


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["sft"]["sft-llama"]["training"].update(lerning_rate=0.1),
     r"sft\.sft-llama\.training: unknown key 'lerning_rate'"),
    (lambda c: c["sft"]["sft-llama"].update(max_steps="ten"),
     r"sft\.sft-llama\.max_steps: 'ten' is not of type 'integer'"),
    (lambda c: c["sft"]["sft-llama"].pop("dataset"), r"sft\.sft-llama: 'dataset' is a required property"),
    (lambda c: c["sft"]["sft-llama"].update(model="gpt-9"),
     r"sft\.sft-llama\.model: 'gpt-9' is not defined under models"),
    (lambda c: c["models"]["tiny-llama"].update(hub="x/y"), r"models\.tiny-llama: a model needs exactly one of"),
    (lambda c: c["datasets"]["mix"].update(stance_mix={"support": 0.5, "neutral": 0.5, "oppose": 0.5}),
     r"datasets\.mix\.stance_mix: shares must sum to 1"),
    (lambda c: c.update(sftt={}), r"<top level>: unknown key 'sftt'"),
    (lambda c: c["complexity"]["tasks"].update(stance={"train_from": ["labelled", "sft"]}),
     r"complexity\.tasks\.stance\.train_from: \['labelled', 'sft'\] must name one or more of labelled, value_qa"),
    (lambda c: c.update(controls={"tests": {"dpo-nope": {"test": "equivalence"}}}),
     r"controls\.tests\.dpo-nope: 'dpo-nope' is not a run under pref"),
    (lambda c: c.update(controls={"tests": {"dpo-support": {"test": "superiority", "direction": "up",
                                                            "against": "simpo-oppose"}}}),
     r"controls\.tests\.dpo-support\.against: 'simpo-oppose' must be a control with test equivalence"),
    (lambda c: c.update(controls={"tests": {"dpo-support": {"test": "superiority"}}}),
     r"controls\.tests\.dpo-support: 'direction' is a required property"),
    (lambda c: c.update(controls={"tests": {"dpo-support": {"test": "equivalence", "direction": "up"}}}),
     r"controls\.tests\.dpo-support"),
])
def test_bad_config_names_the_key(tiny_config, mutate, message):
    mutate(tiny_config)
    with pytest.raises(ConfigError, match=message):
        validate(tiny_config)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["sft"]["sft-llama"]["training"].update(lerning_rate=0.1), "lerning_rate"),
    (lambda c: c["sft"]["sft-llama"].update(max_steps="ten"), "sft.sft-llama.max_steps"),
    (lambda c: c["sft"]["sft-llama"].pop("checkpoints"), "'checkpoints' is a required property"),
])
def test_workflow_stops_at_parse_time_naming_the_key(tmp_path, tiny_config, mutate, key):
    mutate(tiny_config)
    result = snakemake(tmp_path, "-n", "--configfile", str(write_config(tmp_path / "bad.yaml", tiny_config)))
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()  # nothing ran


def test_controls_default_to_the_datasets_directions_and_state_their_tests(tiny_config):
    from posttrain.config import control_tests

    tests = {t["run"]: t for t in control_tests(validate(copy.deepcopy(tiny_config)))}
    # no negative control beside them: each positive control is tested against 0, in its dataset's direction
    assert tests["dpo-support"] == {"run": "dpo-support", "test": "superiority", "direction": "up",
                                   "against": None, "power": 0.8, "margin": 0.1}
    assert tests["simpo-oppose"]["direction"] == "down"
    default = load(REPO / "config" / "config.yaml")
    stated = {t["run"]: (t["test"], t["direction"], t["against"], t["margin"]) for t in control_tests(default)}
    assert stated == {"dpo-support": ("superiority", "up", "dpo-neutral", 0.1),
                      "dpo-oppose": ("superiority", "down", "dpo-neutral", 0.1),
                      "dpo-neutral": ("equivalence", None, None, 0.1)}


def test_seeds_replicate_a_run_and_a_child_names_a_replicate(tiny_config):
    fresh = copy.deepcopy(tiny_config)
    tiny_config["pref"]["dpo-support"]["seeds"] = [3, 7]
    config = validate(tiny_config)
    assert "dpo-support" not in config["pref"]
    for seed in (3, 7):
        replica = config["pref"][f"dpo-support-seed{seed}"]
        assert replica["training"]["seed"] == seed and replica["replicate_of"] == "dpo-support"
        assert "seeds" not in replica
    assert validate(copy.deepcopy(config))["pref"].keys() == config["pref"].keys()  # validating again: the same

    fresh["sft"]["sft-llama"]["seeds"] = [0, 1]
    with pytest.raises(ConfigError, match=r"from.run: 'sft-llama' is replicated over seeds; name one replicate "
                                          r"\(sft-llama-seed0, sft-llama-seed1\)"):
        validate(fresh)


def test_a_run_on_a_missing_engine_stops_before_its_first_job(tmp_path, tiny_config):
    """engine: vllm where vLLM is not installed: a dry run plans (the cluster's is checked on this machine), a real
    run stops in Snakemake's onstart, naming the key, before any job writes anything."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    tiny_config["probes"]["values"].update(modes=["forced_choice", "generation"], generation={"engine": "vllm"})
    config = str(write_config(tmp_path / "vllm.yaml", tiny_config))
    assert snakemake(tmp_path, "-n", "--configfile", config).returncode == 0
    result = snakemake(tmp_path, "--cores", "1", "--configfile", config)
    assert result.returncode != 0
    assert "probes.values.generation.engine: vllm is not installed" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()
