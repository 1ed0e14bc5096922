"""The `audioclf` command line: argument parsing only; every subcommand calls the Python API."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from audioclf.config import DEVICES, ConfigError, TrainConfig, load_config, parse_db_range

PREDICT_CHUNK = 256  # files decoded at a time by `predict`, so memory stays flat on large folders
BF16_HELP = ("Run the model under bfloat16 autocast: faster on a GPU and on a CPU with native bfloat16 (AVX-512 "
             "BF16 or AMX), slower on other CPUs; scores differ slightly from float32.")
FP16_HELP = "Run the model under float16 autocast (CUDA devices only); scores differ slightly from float32."


def _add_device_flags(parser: argparse.ArgumentParser, half_precision: bool = True) -> None:
    """--device, and the autocast flags --bf16 / --fp16 where the command runs a PyTorch model."""
    parser.add_argument("--device", default="auto", help=f"Where the model runs: {DEVICES} (default: auto).")
    if half_precision:
        parser.add_argument("--bf16", action="store_true", help=BF16_HELP)
        parser.add_argument("--fp16", action="store_true", help=FP16_HELP)

Prediction = list[dict[str, Any]]  # the top-k {"label", "score"} of one clip or window
Span = tuple[float, float]  # a window's start_s, end_s
Emit = Callable[..., None]  # emit(path, predictions | None, error | None, span=None): one row of output


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    _setup_logging(args.quiet)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("audioclf: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from audioclf.runs import TrainingInterrupted

        if isinstance(err, TrainingInterrupted):  # Ctrl-C with a checkpoint saved: resumable
            print(f"audioclf: {err}", file=sys.stderr)
            return 130
        if not isinstance(err, _user_errors()):
            raise
        print(f"audioclf: error: {err}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by input (config, data, files, run folders): shown as one line, not a traceback."""
    from audioclf.audio import AudioError
    from audioclf.inference.onnx import ExportError
    from audioclf.runs import RunError
    from audioclf.sources.records import DataError
    from audioclf.synth.dataset import PhraseFileError
    from audioclf.synth.espeak import SpeechError

    return ConfigError, DataError, AudioError, RunError, ExportError, PhraseFileError, SpeechError, OSError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioclf", description="Fine-tune, evaluate and run audio classifiers on labeled audio."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="Only print results and errors.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_train(commands)
    _add_resume(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    _add_serve(commands)
    _add_export(commands)
    _add_synth(commands)
    _add_demo(commands)
    return parser


def _add_train(commands: Any) -> None:
    train = commands.add_parser("train", help="Fine-tune a pretrained encoder on labeled audio.",
                                description="Fine-tune a pretrained encoder; flags override --config.")
    train.add_argument("--config", type=Path, help="YAML file of config keys (flags below override it).")
    helps = TrainConfig.field_help()
    for item in fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        default = item.default
        if "bool" in str(item.type):
            train.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{helps[item.name]} (default: {default})")
        else:
            train.add_argument(flag, default=None, metavar=item.name.upper(),
                               help=f"{helps[item.name]} (default: {default})")
    train.set_defaults(handler=_run_train)


def _add_resume(commands: Any) -> None:
    resume = commands.add_parser("resume", help="Continue an unfinished training run from its newest checkpoint.",
                                 description="Continue a crashed, killed or interrupted run with its saved "
                                 "config, data split, optimizer, scheduler and RNG state.")
    resume.add_argument("run_dir", help="The run folder (train's --output).")
    resume.set_defaults(handler=_run_resume)


def _add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser("evaluate", help="Score a trained model on labeled data.")
    evaluate.add_argument("model", help="Run folder or model folder.")
    evaluate.add_argument("--data", required=True, help="Same kinds of spec as `train --data`.")
    evaluate.add_argument("--data-config", help="Hub config or MInDS-14 locale(s).")
    evaluate.add_argument("--data-split", default="train", help="Hub split to read (default: train).")
    evaluate.add_argument("--audio-column")
    evaluate.add_argument("--label-column")
    evaluate.add_argument("--output", help="Folder for metrics.json and the plot (default: MODEL/evaluation).")
    _add_device_flags(evaluate, half_precision=False)
    evaluate.add_argument("--trust-remote-code", action="store_true")
    evaluate.set_defaults(handler=_run_evaluate)


def _add_predict(commands: Any) -> None:
    predict = commands.add_parser("predict", help="Predict labels for audio files and folders.")
    predict.add_argument("model", help="Run folder or model folder.")
    predict.add_argument("inputs", nargs="+", help="Audio files and/or folders (searched recursively).")
    predict.add_argument("--top-k", type=int, default=5, help="Labels per clip (default: 5).")
    predict.add_argument("--format", choices=["table", "json", "csv"], default="table")
    predict.add_argument("--batch-size", type=int, default=8, help="Clips per forward pass (default: 8).")
    predict.add_argument("--window", type=float, metavar="SECONDS",
                         help="Cut each recording into windows this long and predict each one (a row per window, "
                         "with start_s and end_s), instead of one prediction on its first max_duration seconds.")
    predict.add_argument("--hop", type=float, metavar="SECONDS",
                         help="Seconds from one window's start to the next (default: --window, no overlap).")
    _add_device_flags(predict)
    predict.add_argument("--trust-remote-code", action="store_true")
    predict.set_defaults(handler=_run_predict)


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser("serve", help="Serve a trained model over HTTP, with a web page at /.",
                                description="HTTP API (/v1/classify, /v1/classify/batch, /v1/labels, /healthz, "
                                "/readyz, /docs) and a web page at /. Needs `pip install 'audioclf[serve]'`.")
    serve.add_argument("model", help="Run folder or model folder (safetensors).")
    serve.add_argument("--host", default="127.0.0.1", help="Address to bind (default: 127.0.0.1, this machine only).")
    serve.add_argument("--port", type=int, default=8000, help="Port (default: 8000).")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="Largest request body (default: 20).")
    serve.add_argument("--max-duration", type=float, default=60.0, help="Longest clip in seconds (default: 60).")
    serve.add_argument("--workers", type=int, default=1, help="Server processes, each with the model (default: 1).")
    serve.add_argument("--top-k", type=int, default=5, help="Labels per answer unless the request says (default: 5).")
    serve.add_argument("--max-batch", type=int, default=8,
                       help="Concurrent requests scored in one model call; 1 turns batching off (default: 8).")
    serve.add_argument("--batch-window-ms", type=float, default=5.0,
                       help="How long a request waits for others to batch with (default: 5).")
    serve.add_argument("--queue-limit", type=int, default=64,
                       help="Requests waiting for the model before new ones get 503 (default: 64).")
    _add_device_flags(serve)
    serve.add_argument("--trust-remote-code", action="store_true")
    serve.set_defaults(handler=_run_serve)


def _add_export(commands: Any) -> None:
    export = commands.add_parser("export", help="Export a trained model to ONNX for fast CPU inference.",
                                 description="Write MODEL as ONNX (with its labels and feature extractor) to "
                                 "--output; predict, serve and Classifier.load run that folder on onnxruntime.")
    export.add_argument("model", help="Run folder or model folder.")
    export.add_argument("--format", choices=["onnx"], default="onnx")
    export.add_argument("--quantize", choices=["int8"], help="Dynamic int8 weight quantization (smaller, faster).")
    export.add_argument("--output", required=True, help="Folder to write.")
    export.add_argument("--overwrite", action="store_true", help="Replace --output if it exists.")
    _add_device_flags(export, half_precision=False)
    export.set_defaults(handler=_run_export)


def _add_synth(commands: Any) -> None:
    synth = commands.add_parser("synth", help="Make a labeled speech dataset from a YAML of phrases (eSpeak NG).")
    synth.add_argument("phrases", nargs="?", help="YAML: label -> language -> phrases (default: the bundled "
                       "14 MInDS-14 banking intents in en, fr, de).")
    synth.add_argument("--output", required=True, help="Folder for clips/ and manifest.csv.")
    synth.add_argument("--voices", type=int, default=12, help="Synthetic voices (default: 12).")
    synth.add_argument("--sample-rate", type=int, default=16000, help="Output rate in Hz (default: 16000).")
    synth.add_argument("--noise-snr", help="Background noise at a random SNR in this dB range, e.g. 15:35.")
    synth.add_argument("--telephone", action="store_true", help="Telephone band (300-3400 Hz).")
    synth.add_argument("--languages", help="Comma-separated language codes to keep (default: all in the file).")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_run_synth)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="Offline demo: synthesize intents, train, evaluate on unseen voices.")
    demo.add_argument("--output", type=Path, default=Path("runs/demo"), help="Run folder (default: runs/demo).")
    demo.add_argument("--model", default=None, help="Model to fine-tune instead of the compact from-scratch preset.")
    demo.add_argument("--voices", type=int, default=24, help="Synthetic voices (default: 24).")
    demo.add_argument("--seed", type=int, default=42, help="Seed of the voices and of training (default: 42).")
    demo.set_defaults(handler=_run_demo)


def _run_synth(args: argparse.Namespace) -> int:
    from audioclf.synth import SynthOptions, bundled_phrases, synthesize_dataset

    if args.voices < 1 or args.sample_rate < 4000:
        raise ConfigError("--voices must be >= 1 and --sample-rate >= 4000")
    options = SynthOptions(voices=args.voices, sample_rate=args.sample_rate,
                           noise_snr=parse_db_range(args.noise_snr, "--noise-snr"),
                           telephone=args.telephone, seed=args.seed,
                           languages=args.languages.split(",") if args.languages else None)
    manifest = synthesize_dataset(Path(args.phrases) if args.phrases else bundled_phrases(), Path(args.output),
                                  options)
    print(f"wrote {manifest}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from audioclf.demo import DEMO_MODEL, run_demo

    _quiet_transformers()
    run_demo(args.output, args.model or DEMO_MODEL, args.voices, args.seed)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from audioclf.api import train

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    config = load_config(args.config, **overrides)
    _quiet_transformers()
    return _report_run(train(config))


def _run_resume(args: argparse.Namespace) -> int:
    from audioclf.api import resume

    _quiet_transformers()
    return _report_run(resume(args.run_dir))


def _report_run(run_dir: Path) -> int:
    from audioclf.evaluation import format_metrics
    from audioclf.runs import is_main_process

    if not is_main_process():
        return 0

    print(format_metrics(json.loads((run_dir / "metrics.json").read_text())))
    print(f"run folder: {run_dir}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from audioclf.api import evaluate
    from audioclf.evaluation import format_metrics

    _quiet_transformers()
    metrics = evaluate(args.model, args.data, args.data_config, args.data_split, args.audio_column,
                       args.label_column, args.output, args.trust_remote_code, args.device)
    print(format_metrics(metrics))
    print(f"written: {Path(args.output) if args.output else Path(args.model) / 'evaluation'}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from audioclf.inference import Classifier, iter_audio_files

    if args.top_k < 1 or args.batch_size < 1:
        raise ConfigError("--top-k and --batch-size must be >= 1")
    if args.hop is not None and args.window is None:
        raise ConfigError("--hop needs --window")
    _quiet_transformers()
    clf = Classifier.load(args.model, trust_remote_code=args.trust_remote_code, bf16=args.bf16, fp16=args.fp16,
                          device=args.device)
    files = _expand_inputs(args.inputs, iter_audio_files)
    emit = _emitter(args.format, windowed=args.window is not None)
    predict_files = _predict_clips if args.window is None else _predict_windows
    failed = predict_files(clf, files, args, emit)
    if failed:
        print(f"audioclf: {failed} of {len(files)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _predict_windows(clf: Any, files: list[tuple[Path, str | None]], args: argparse.Namespace, emit: Emit) -> int:
    """One file at a time (long recordings), a row per window; returns the number of files that failed."""
    from audioclf.audio import AudioError
    from audioclf.inference.windows import classify_windows, window_samples

    window, hop = window_samples(clf, args.window, args.hop)
    failed = 0
    for path, problem in files:
        try:
            wave = _prepared(clf, path, problem, crop=False)
        except AudioError as err:
            emit(str(path), None, err.reason)
            failed += 1
            continue
        for row in classify_windows(clf, wave, window, hop, args.top_k, args.batch_size):
            emit(str(path), row["predictions"], None, (row["start_s"], row["end_s"]))
    return failed


def _predict_clips(clf: Any, files: list[tuple[Path, str | None]], args: argparse.Namespace, emit: Emit) -> int:
    """Files in chunks, batched by length within each; returns the number of files that failed."""
    from audioclf.audio import AudioError

    failed = 0
    for chunk in _chunks(files, PREDICT_CHUNK):
        waves, errors = [], {}
        for index, (path, problem) in enumerate(chunk):
            try:
                waves.append(_prepared(clf, path, problem))
            except AudioError as err:
                errors[index] = err.reason
        scores = iter(clf.probabilities(waves, args.batch_size, progress=len(files) > 16) if waves else [])
        for index, (path, _) in enumerate(chunk):  # rows in input order, failures among them
            if index in errors:
                emit(str(path), None, errors[index])
            else:
                emit(str(path), clf.top_labels(next(scores), args.top_k), None)
        failed += len(errors)
    return failed


def _prepared(clf: Any, path: Path, problem: str | None, crop: bool = True) -> Any:
    """The file's waveform as the model takes it; AudioError for a problem found before decoding or while doing it."""
    from audioclf.audio import AudioError

    if problem:
        raise AudioError(str(path), problem)
    return clf.prepare(path, crop=crop)


def _run_export(args: argparse.Namespace) -> int:
    from audioclf.api import export

    _quiet_transformers()
    output = export(args.model, args.output, args.format, args.quantize, args.overwrite, args.device)
    size_mb = (output / "model.onnx").stat().st_size / 1e6
    print(f"wrote {output} (model.onnx, {size_mb:.1f} MB{', int8' if args.quantize else ''})")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from audioclf.runs import require_model_folder

    require_model_folder(Path(args.model))
    try:
        from audioclf.inference.server import ServeOptions, serve
    except ImportError as err:
        raise ConfigError(str(err)) from None
    names = [f.name for f in fields(ServeOptions)]
    try:
        options = ServeOptions(**{name: getattr(args, name) for name in names}).validate()
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _quiet_transformers()
    serve(args.model, options)
    return 0


def _expand_inputs(inputs: list[str], expand: Callable[[list[str]], list[Path]]) -> list[tuple[Path, str | None]]:
    """Files to predict, each with a problem found before decoding (a folder holding no audio)."""
    found: list[tuple[Path, str | None]] = []
    for item in inputs:
        files = expand([item])
        found += [(f, None) for f in files] if files else [(Path(item), "folder holds no audio files")]
    return found


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _emitter(fmt: str, windowed: bool = False) -> Emit:
    """Print one row per prediction (or error) as it comes; `windowed` rows carry their window's (start_s, end_s)."""
    if fmt == "json":
        def emit(path: str, preds: Prediction | None, error: str | None, span: Span | None = None) -> None:
            row: dict[str, Any] = {"path": path, **({"start_s": span[0], "end_s": span[1]} if span else {})}
            row.update({"predictions": preds} if error is None else {"error": error})
            print(json.dumps(row, ensure_ascii=False), flush=True)
        return emit
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", *(["start_s", "end_s"] if windowed else []), "rank", "label", "score", "error"])

        def emit(path: str, preds: Prediction | None, error: str | None, span: Span | None = None) -> None:
            where = [path, *([f"{span[0]:.3f}", f"{span[1]:.3f}"] if span else ["", ""] if windowed else [])]
            rows = [[*where, "", "", "", error]] if error else [
                [*where, rank, p["label"], f"{p['score']:.6f}", ""] for rank, p in enumerate(preds or [], 1)
            ]
            writer.writerows(rows)
        return emit

    def emit(path: str, preds: Prediction | None, error: str | None, span: Span | None = None) -> None:
        shown = f"ERROR {error}" if error else "  ".join(f"{p['label']} ({p['score']:.3f})" for p in preds or [])
        where = f"{path}@{span[0]:.2f}-{span[1]:.2f}s" if span else path
        print(f"{where}\t{shown}", flush=True)
    return emit


def _setup_logging(quiet: bool) -> None:
    # Each message under its logger's name: ours read "audioclf: ...", a library's warning is not passed off as ours.
    logging.basicConfig(format="%(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("audioclf").setLevel(logging.WARNING if quiet else logging.INFO)


def _quiet_transformers() -> None:
    """transformers' load reports and deprecation chatter drown the user's output; keep its errors."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


if __name__ == "__main__":
    sys.exit(main())
