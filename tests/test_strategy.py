"""#7: three splits, --strategy auto and why it chose, --time-budget, class weights, validation warnings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import write_tone_folder
from tiny_models import save_tiny

import audioclf
from audioclf.evaluation import result_warnings
from audioclf.sources import DataError, Record, hold_out_validation
from audioclf.training.dataset import DecodedClips
from audioclf.training.finetune import weighted_loss
from audioclf.training.strategy import class_weights

FAST = dict(batch_size=8, gradient_accumulation_steps=1, warmup_ratio=0.0, freeze_feature_encoder=False)


def _records(labels: list[str], groups: list[str] | None = None, splits: list[str | None] | None = None):
    return [Record(audio=f"{i}.wav", name=f"{i}.wav", label=label, group=groups[i] if groups else None,
                   split=splits[i] if splits else None) for i, label in enumerate(labels)]


def test_validation_is_stratified_and_seeded() -> None:
    train = _records(["a"] * 40 + ["b"] * 4 + ["c"] * 2)
    kept, validation = hold_out_validation(train, 0.1, seed=0)
    assert len(validation) == 5 and [r.label for r in validation].count("a") == 4  # 10%, in proportion
    assert not {r.name for r in kept} & {r.name for r in validation} and len(kept) + len(validation) == 46
    assert hold_out_validation(train, 0.1, seed=0) == (kept, validation)
    assert hold_out_validation(train, 0.0, seed=0) == (train, [])


def test_validation_keeps_groups_apart_and_explicit_validation_wins() -> None:
    groups = [f"spk{i % 6}" for i in range(60)]
    kept, validation = hold_out_validation(_records(["a", "b"] * 30, groups), 0.2, seed=0, group_by=True)
    assert validation and not {r.group for r in kept} & {r.group for r in validation}
    splits = ["validation" if i < 4 else "train" for i in range(20)]
    kept, validation = hold_out_validation(_records(["a", "b"] * 10, splits=splits), 0.5, seed=0)
    assert [r.name for r in validation] == ["0.wav", "1.wav", "2.wav", "3.wav"] and len(kept) == 16


def test_too_little_data_for_validation_says_how_to_go_without() -> None:
    with pytest.raises(DataError, match="validation-size 0"):
        hold_out_validation(_records(["a", "b", "c"]), 0.1, seed=0)


def test_class_weights_are_inverse_to_frequency_and_enter_the_loss() -> None:
    weights = class_weights(DecodedClips(labels=[0, 0, 0, 1]), num_labels=3)
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 0.0])
    logits, labels = torch.randn(4, 3), torch.tensor([0, 0, 0, 1])
    loss = weighted_loss(weights)(type("Out", (), {"logits": logits})(), labels, num_items_in_batch=4)
    per_clip = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert float(loss) == pytest.approx(float((per_clip * weights[labels]).sum() / 4), rel=1e-5)


def test_validation_near_chance_is_warned() -> None:
    metrics = {"accuracy": 0.9, "macro_f1": 0.9, "per_class": {"a": {"support": 5}, "b": {"support": 5}}}
    assert result_warnings(metrics, {"a": 10, "b": 10}) == []
    warnings = result_warnings(metrics, {"a": 10, "b": 10}, validation=(0.5, {"a": 3, "b": 3}))
    assert len(warnings) == 1 and warnings[0].startswith("validation accuracy 0.500 is no better than guessing")


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough clips for auto to consider fine-tuning: 30 per label, so over 20 per label train."""
    return write_tone_folder(tmp_path_factory.mktemp("auto") / "tones", per_label=30, rate=8000)


def _status(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def test_auto_keeps_the_fine_tuned_model_when_it_scores_better(tones: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")),
                             output=str(tmp_path / "run"), probe_learning_rate=1e-9, epochs=4,
                             learning_rate=2e-3, **FAST)  # a probe that cannot move off its random head
    status = _status(run)
    tried = status["validation_by_strategy"]
    assert set(tried) == {"probe", "finetune"}, status["strategy_reason"]  # both were tried
    assert status["validation_accuracy"] == max(tried.values())  # auto is never worse than the better one
    assert status["strategy_used"] == "finetune" and tried["finetune"] > tried["probe"]
    assert "auto: keeping the fine-tuned model" in caplog.text
    assert status["num_validation_clips"] == 8 and status["num_eval_clips"] == 18


def test_auto_restores_the_probe_when_fine_tuning_does_worse(tones: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from audioclf.training import strategy

    # the tones are so easy that auto would keep a perfect probe without fine-tuning: make it try anyway,
    # at a learning rate where fine-tuning diverges, so the probe must be what is saved
    monkeypatch.setattr(strategy, "finetune_skip_reason", lambda *args: None)
    base = save_tiny("wav2vec2", tmp_path / "base")
    run = audioclf.train(data=str(tones), model=str(base), output=str(tmp_path / "run"), epochs=1,
                         learning_rate=50.0, **FAST)
    status = _status(run)
    assert status["strategy_used"] == "probe", status["strategy_reason"]
    assert status["validation_by_strategy"]["probe"] > status["validation_by_strategy"]["finetune"]
    assert status["accuracy"] >= 0.8  # the restored probe, not the diverged model
    from safetensors.torch import load_file

    before, after = load_file(str(base / "model.safetensors")), load_file(str(run / "model.safetensors"))
    encoder = [name for name in before if name.startswith("wav2vec2.encoder.layers.0.")]
    assert encoder and all(torch.equal(before[name], after[name]) for name in encoder)


def test_time_budget_stops_fine_tuning_and_auto_skips_it(tones: Path, tmp_path: Path) -> None:
    base = str(save_tiny("wav2vec2", tmp_path / "base"))
    run = audioclf.train(data=str(tones), model=base, output=str(tmp_path / "ft"), strategy="finetune", epochs=5,
                         time_budget=0.0001, **FAST)
    state = json.loads(next((run / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["epoch"] < 5 and _status(run)["status"] == "complete"
    run = audioclf.train(data=str(tones), model=base, output=str(tmp_path / "auto"), time_budget=0.0001,
                         probe_learning_rate=1e-9, **FAST)  # an imperfect probe, which would be worth fine-tuning
    assert _status(run)["strategy_used"] == "probe" and "--time-budget" in _status(run)["strategy_reason"]


def test_auto_compares_exact_validation_scores_and_ties_keep_the_probe(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path, tones: Path) -> None:
    from audioclf.training import probe, strategy
    from audioclf.training.finetune import FineTuned

    # 149/150 right for both: a probe score rounded to 0.9933 once lost to fine-tuning's 0.99333
    monkeypatch.setattr(strategy, "finetune_skip_reason", lambda *args: None)
    monkeypatch.setattr(probe, "_accuracy", lambda *args: 149 / 150)
    monkeypatch.setattr(strategy, "fine_tune", lambda config, run_dir, resume, model, *rest, **kw: FineTuned(
        model, 1.0, 149 / 150))
    run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")),
                         output=str(tmp_path / "run"), **FAST)
    assert _status(run)["strategy_used"] == "probe"


def _weights(folder: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / name))


def test_average_weights_keeps_the_mean_of_every_epoch_and_resumes_it(tones: Path, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModelForAudioClassification, TrainerControl, TrainerState, TrainingArguments

    from audioclf.training.averaging import AVERAGE_FILE, EpochAverage

    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")),
                             output=str(tmp_path / "run"), strategy="finetune", epochs=2, learning_rate=2e-3,
                             average_weights=True, **FAST)
    assert "kept the mean of 2 weight snapshots: validation accuracy" in caplog.text
    first, second = sorted((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    kept, one, two = _weights(run), _weights(first), _weights(second)
    trained = [name for name in kept if not torch.equal(one[name], two[name])]
    assert trained  # the epochs differ, so the mean is neither of them
    for name in kept:
        torch.testing.assert_close(kept[name], (one[name] + two[name]) / 2)
    assert f"validation accuracy {_status(run)['validation_accuracy']:.4f}" in caplog.text  # the mean's own score

    model = AutoModelForAudioClassification.from_pretrained(second)
    args, state = TrainingArguments(output_dir=str(tmp_path / "unused"), report_to="none"), TrainerState()
    with_start = EpochAverage(include_start=True, resume_from=None)  # a probe-trained start counts as one snapshot
    with_start.on_train_begin(args, state, TrainerControl(), model=model)
    assert with_start.count == 1 and EpochAverage(include_start=False, resume_from=None).count == 0

    # resuming from the first checkpoint continues its saved mean, not a fresh one
    average = EpochAverage(include_start=True, resume_from=first)
    average.on_train_begin(args, state, TrainerControl(), model=model)
    assert average.count == 1 and (first / AVERAGE_FILE).is_file()
    average.on_epoch_end(args, state, TrainerControl(), model=model)
    average.apply_to(model)
    for name, param in model.state_dict().items():
        if name in kept:
            torch.testing.assert_close(param, kept[name])


def test_wise_ft_mixes_the_epoch_mean_with_the_start_and_resumes_it(tones: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModelForAudioClassification, TrainerControl, TrainerState, TrainingArguments

    from audioclf.runs import RunError
    from audioclf.training.averaging import START_FILE, StartMix

    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")),
                             output=str(tmp_path / "run"), strategy="finetune", probe_first=True, epochs=2,
                             learning_rate=2e-3, average_weights=True, wise_ft=0.25, **FAST)
    assert ("kept the mean of 3 weight snapshots, as 0.25 x itself + 0.75 x the start (--wise-ft): validation"
            in caplog.text)
    first, second = sorted((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    kept, one, two = _weights(run), _weights(first), _weights(second)
    start = _weights(run / "checkpoints", START_FILE)
    moved = [name for name in start if not torch.equal(start[name], two[name])]
    assert "classifier.weight" in moved and any(name.startswith("wav2vec2.encoder") for name in moved)
    for name in kept:  # 0.75 x the start + 0.25 x the mean of the start (the probe's head) and both epochs
        torch.testing.assert_close(kept[name], 0.75 * start[name] + 0.25 * (start[name] + one[name] + two[name]) / 3)

    # a resumed run mixes with the saved start, not with the checkpoint it resumes from
    model = AutoModelForAudioClassification.from_pretrained(second)
    args, state = TrainingArguments(output_dir=str(tmp_path / "unused"), report_to="none"), TrainerState()
    resumed = StartMix(0.5, run / "checkpoints", resuming=True)
    resumed.on_train_begin(args, state, TrainerControl(), model=model)
    resumed.apply_to(model)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, (start[name] + two[name]) / 2)
    with pytest.raises(RunError, match=f"cannot resume --wise-ft: .*{START_FILE}"):
        StartMix(0.5, tmp_path, resuming=True).on_train_begin(args, state, TrainerControl(), model=model)


def test_wise_ft_mixes_the_best_epoch_with_the_start(tones: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from audioclf.runs import newest_checkpoint
    from audioclf.training.averaging import START_FILE

    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")),
                             output=str(tmp_path / "run"), strategy="finetune", probe_first=True, epochs=2,
                             learning_rate=2e-3, wise_ft=0.5, **FAST)
    assert "kept the best epoch, as 0.5 x itself + 0.5 x the start (--wise-ft): validation" in caplog.text
    last = newest_checkpoint(run)
    best = Path(json.loads((last / "trainer_state.json").read_text())["best_model_checkpoint"])
    kept, epoch, start = _weights(run), _weights(best), _weights(run / "checkpoints", START_FILE)
    for name in kept:
        torch.testing.assert_close(kept[name], (start[name] + epoch[name]) / 2)


def test_wise_ft_needs_a_trained_head_to_mix_with() -> None:
    with pytest.raises(audioclf.ConfigError, match="wise_ft=0.5 .*--probe-first"):
        audioclf.TrainConfig(data="x", strategy="finetune", wise_ft=0.5).validate()
    with pytest.raises(audioclf.ConfigError, match="wise_ft=1.0 .*strictly between 0 and 1"):
        audioclf.TrainConfig(data="x", strategy="auto", wise_ft=1.0).validate()
    audioclf.TrainConfig(data="x", strategy="finetune", probe_first=True, wise_ft=0.5).validate()


def test_auto_averages_from_the_probe_trained_start(tones: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from audioclf.training import strategy

    monkeypatch.setattr(strategy, "finetune_skip_reason", lambda *args: None)  # the probe is perfect on tones
    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")),
                             output=str(tmp_path / "run"), epochs=2, learning_rate=2e-3, average_weights=True, **FAST)
    assert "kept the mean of 3 weight snapshots: validation accuracy" in caplog.text  # the probe's head + 2 epochs
    status = _status(run)
    assert status["validation_accuracy"] == max(status["validation_by_strategy"].values())
