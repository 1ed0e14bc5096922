"""The typed config: defaults, YAML round trip, unknown keys, value ranges, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioclf.config import ConfigError, TrainConfig, load_config


def test_defaults_are_the_guides_hyperparameters() -> None:
    config = TrainConfig()
    assert (config.learning_rate, config.batch_size, config.gradient_accumulation_steps) == (3e-5, 32, 4)
    assert (config.epochs, config.warmup_ratio, config.test_size, config.max_duration) == (10, 0.1, 0.2, 10)
    assert (config.data, config.data_config, config.data_split) == ("PolyAI/minds14", "en-US", "train")


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = load_config(data="clips/", epochs=3, group_by="speaker", freeze_feature_encoder=False)
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert TrainConfig.from_yaml(path) == config


def test_keyword_overrides_beat_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 4\nlearning_rate: 1e-4\n")
    config = load_config(path, epochs=2)
    assert config.epochs == 2 and config.learning_rate == 1e-4


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": -1}, "epochs=-1.0 is not allowed"),
        ({"test_size": 1.5}, "test_size=1.5"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"max_bad_fraction": 1}, "max_bad_fraction"),
        ({"batch_size": 2.5}, "not a whole number"),
        ({"epochs": "many"}, "not a valid float"),
        ({"stratify": "maybe"}, "not a boolean"),
        ({"augment_crop": 0.05}, r"augment_crop=0.05 is not allowed: expected 0 \(off\) or seconds >= 0.1"),
        ({"whisper_padding": "both"}, "whisper_padding='both' is not allowed: expected right or left"),
        ({"learning_rat": 1}, "did you mean 'learning_rate'"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.build(values)


def test_cli_strings_are_coerced_to_declared_types() -> None:
    config = TrainConfig.build({"epochs": "2", "batch-size": "8", "stratify": "false", "threads": None})
    assert config.epochs == 2.0 and config.batch_size == 8 and config.stratify is False and config.threads is None


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_yaml(path)
