"""ONNX export: the folder runs on onnxruntime behind Classifier, predict and serve, with the same scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_tone_folder
from tiny_models import BUILDERS, save_tiny

import audioclf
from audioclf.cli import main
from audioclf.inference import Classifier
from audioclf.inference.onnx import OnnxModel

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'audioclf[onnx]'")


def scores_on(model_dir: Path, clips: list[Path]) -> np.ndarray:
    clf = Classifier.load(model_dir)
    return clf.probabilities([clf.prepare(path) for path in clips], batch_size=4)


@pytest.fixture(scope="module")
def exported(trained_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audioclf.export(trained_run[0], tmp_path_factory.mktemp("onnx") / "float")


def test_onnx_scores_equal_the_torch_model(trained_run: tuple[Path, Path], exported: Path) -> None:
    """A wav2vec2-base-style model: dynamic batch and length, clips of several lengths batched together
    (the graph takes an attention mask and normalizes each clip's first layer over its own frames)."""
    clips = sorted(trained_run[1].rglob("*.wav"))
    assert isinstance(Classifier.load(exported).model, OnnxModel)
    np.testing.assert_allclose(scores_on(exported, clips), scores_on(trained_run[0], clips), atol=1e-4)
    assert json.loads((exported / "onnx.json").read_text())["inputs"] == ["input_values", "attention_mask"]
    assert not Classifier.load(exported)._equal_lengths_only
    assert Classifier.load(exported).labels == Classifier.load(trained_run[0]).labels


def test_int8_export_is_smaller_and_agrees_on_top1(trained_run: tuple[Path, Path], exported: Path,
                                                   tmp_path: Path) -> None:
    quantized = audioclf.export(trained_run[0], tmp_path / "int8", quantize="int8")
    clips = sorted(trained_run[1].rglob("*.wav"))
    agreement = np.mean(scores_on(quantized, clips).argmax(1) == scores_on(exported, clips).argmax(1))
    assert agreement >= 0.95
    assert (quantized / "model.onnx").stat().st_size < (exported / "model.onnx").stat().st_size


@pytest.mark.slow
def test_int8_quantizes_weight_products_and_keeps_activation_products_in_float(trained_run: tuple[Path, Path],
                                                                               tmp_path: Path) -> None:
    import onnx

    from audioclf.inference.onnx import activation_products

    float_graph = audioclf.export(trained_run[0], tmp_path / "float") / "model.onnx"
    graph = onnx.load(str(float_graph), load_external_data=False).graph
    weights = {tensor.name for tensor in graph.initializer}
    matmuls = [node for node in graph.node if node.op_type == "MatMul"]
    products = activation_products(float_graph)
    layers = json.loads((trained_run[0] / "config.json").read_text())["num_hidden_layers"]
    assert len(products) == 2 * layers  # attention's scores and weighted values, in each transformer layer
    assert all(not weights & set(node.input) for node in matmuls if node.name in products)
    quantized = onnx.load(str(audioclf.export(trained_run[0], tmp_path / "int8", quantize="int8") / "model.onnx"))
    ops = {node.name: node.op_type for node in quantized.graph.node}
    assert all(ops.get(name) == "MatMul" for name in products)
    weight_products = [node.name for node in matmuls if node.name not in products]
    assert weight_products and not any(ops.get(name) == "MatMul" for name in weight_products)  # all int8 now
    assert "MatMulInteger" in ops.values() or "DynamicQuantizeMatMul" in ops.values()


def test_whisper_export_keeps_its_cut_context_and_padding_side(tmp_path: Path) -> None:
    """Also: its 1-D convolutions go out as 2-D ones, as they do for the wav2vec2 model above."""
    import onnx

    data = write_tone_folder(tmp_path / "data", per_label=4, rate=16000)
    run = audioclf.train(data=str(data), model=str(save_tiny("whisper", tmp_path / "base")),
                         output=str(tmp_path / "run"), epochs=1, batch_size=4, gradient_accumulation_steps=1,
                         whisper_padding="left")
    exported = audioclf.export(run, tmp_path / "onnx")
    clips = sorted(data.rglob("*.wav"))
    np.testing.assert_allclose(scores_on(exported, clips), scores_on(run, clips), atol=1e-4)
    graph = onnx.load(str(exported / "model.onnx"), load_external_data=False).graph
    weights = {tensor.name: tensor.dims for tensor in graph.initializer}
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convolutions) == 2 and all(len(weights[node.input[1]]) == 4 for node in convolutions)


@pytest.mark.parametrize("kind", ["whisper", "wav2vec2"])
def test_convolutions_as_2d_compute_the_same_and_are_put_back(kind: str, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForAudioClassification

    from audioclf.inference.onnx import convolutions_as_2d

    model = AutoModelForAudioClassification.from_pretrained(save_tiny(kind, tmp_path / kind)).eval()
    if kind == "whisper":
        inputs = {"input_features": torch.randn(3, model.config.num_mel_bins, 2 * model.config.max_source_positions)}
    else:
        inputs = {"input_values": torch.randn(3, 4000)}
    encoder = model.encoder if kind == "whisper" else model.wav2vec2  # a random tiny head's logits are all near 0
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    with torch.no_grad():
        stock = encoder(**inputs).last_hidden_state
        with convolutions_as_2d(model) as swapped:
            assert swapped == len(convolutions) > 0
            torch.testing.assert_close(encoder(**inputs).last_hidden_state, stock, atol=1e-5, rtol=1e-4)
    assert not any("forward" in vars(conv) for conv in convolutions)


def test_predict_and_serve_run_the_exported_folder(trained_run: tuple[Path, Path], exported: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from audioclf.inference.server import create_app

    clip = sorted(trained_run[1].rglob("*.wav"))[0]
    assert main(["predict", str(exported), str(clip), "--format", "json", "--top-k", "1"]) == 0
    predicted = json.loads(capsys.readouterr().out)["predictions"][0]["label"]
    with TestClient(create_app(Classifier.load(exported))) as client:
        answer = client.post("/v1/classify", content=clip.read_bytes(), headers={"content-type": "audio/wav"})
    assert answer.json()["predictions"][0]["label"] == predicted


def test_windows_of_a_long_recording_score_on_onnx_as_in_pytorch(trained_run: tuple[Path, Path],
                                                                exported: Path) -> None:
    clips = sorted(trained_run[1].rglob("*.wav"))[:4]
    recording = np.concatenate([sf.read(clip, dtype="float32")[0] for clip in clips])
    rate = sf.info(clips[0]).samplerate
    every = len(Classifier.load(exported).labels)

    def windows_on(folder: Path) -> list[dict]:
        return Classifier.load(folder).predict_windows([recording], 0.5, 0.25, top_k=every, sampling_rate=rate)[0]

    onnx, torch_windows = windows_on(exported), windows_on(trained_run[0])
    assert [(w["start_s"], w["end_s"]) for w in onnx] == [(w["start_s"], w["end_s"]) for w in torch_windows]
    assert len(onnx) > 4
    for ours, theirs in zip(onnx, torch_windows):
        scores = {p["label"]: p["score"] for p in theirs["predictions"]}
        np.testing.assert_allclose([p["score"] for p in ours["predictions"]],
                                   [scores[p["label"]] for p in ours["predictions"]], atol=1e-4)


def test_export_refuses_to_overwrite_or_re_export_and_bf16_is_refused(exported: Path, trained_run: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(trained_run[0]), "--output", str(exported)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(exported), "--output", str(exported.parent / "again")]) == 2
    assert "already an ONNX export" in capsys.readouterr().err
    assert not (exported.parent / "again").exists()
    assert main(["predict", str(exported), str(next(trained_run[1].rglob("*.wav"))), "--bf16"]) == 2
    assert "--bf16 and --fp16 apply to PyTorch models" in capsys.readouterr().err


@pytest.mark.slow
def test_export_prints_only_its_result(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    """The exporters' notices that no user can act on (torchvision missing, onnxruntime's pre-processing
    hint) stay hidden, and the logging levels the export lowered are restored."""
    import logging
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "audioclf.cli", "export", str(trained_run[0]), "--quantize", "int8",
                           "--output", str(tmp_path / "cli")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'cli'}")
    assert "torchvision" not in done.stderr and "pre-processing" not in done.stderr, done.stderr
    levels = [logging.getLogger(name).level for name in ("", "torch.onnx")]
    audioclf.export(trained_run[0], tmp_path / "api", quantize="int8")
    assert [logging.getLogger(name).level for name in ("", "torch.onnx")] == levels


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(set(BUILDERS) - {"wav2vec2", "whisper"}))  # those two: above
def test_every_other_architecture_exports_with_the_same_logits(kind: str, tmp_path: Path) -> None:
    """Wav2Vec2-BERT takes feature frames, not samples; it and Wav2Vec2-Conformer export with eager attention."""
    import torch

    from audioclf.features import extract_features

    model_dir = save_tiny(kind, tmp_path / kind)
    exported = Classifier.load(audioclf.export(model_dir, tmp_path / "onnx"))
    stock = Classifier.load(model_dir)
    waves = list(np.random.default_rng(0).standard_normal((3, 12000)).astype(np.float32))
    features = extract_features(stock.extractor, waves)
    with torch.no_grad():
        expected = stock.model(**features).logits.numpy()
    got = exported.model(**extract_features(exported.extractor, waves)).logits.numpy()
    scale = np.abs(expected).max()  # a random tiny head's logits are small: the tolerance is relative to them
    assert scale > 0
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * scale)


def test_an_export_the_exporter_cannot_make_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("export failed") from ValueError("Cannot view a tensor with shape [2, 3]\npages more")

    model_dir = save_tiny("wav2vec2", tmp_path / "model")
    monkeypatch.setattr(torch.onnx, "export", fails)
    assert main(["export", str(model_dir), "--output", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert "could not export this wav2vec2 model: ValueError: Cannot view a tensor with shape [2, 3];" in err
    assert "pages more" not in err and not (tmp_path / "onnx").exists() and not list(tmp_path.glob(".onnx-*"))
