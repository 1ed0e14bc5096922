"""`audioclf serve`: the HTTP API (FastAPI) and web page for one classifier; bad input gets a JSON 4xx."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np

from audioclf.audio import AudioError, UndecodableAudio, decode, validate
from audioclf.config import ConfigError, check_device_spec, precision_of
from audioclf.inference.batching import MicroBatcher, Overloaded
from audioclf.inference.classifier import Classifier
from audioclf.inference.windows import cut_windows, window_bounds, window_predictions, window_samples

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
except ImportError as err:  # the serving stack is an optional extra
    raise ImportError("`audioclf serve` needs the serve extra: pip install 'audioclf[serve]'") from err

log = logging.getLogger("audioclf")

RAW_AUDIO_TYPES = ("audio/", "application/octet-stream")
APP_ENV = "AUDIOCLF_SERVE"  # how `--workers N` hands the model and options to each worker process
ASK_FIELDS = {"top_k": {"type": "integer"}, "window": {"type": "number"}, "hop": {"type": "number"}}
UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}, **ASK_FIELDS}}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}
BATCH_BODY = {
    "requestBody": {
        "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            **ASK_FIELDS}}}},
        "required": True,
    }
}
STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@dataclass
class ServeOptions:
    """Runtime settings of `audioclf serve` (each is a CLI flag)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 20.0
    max_duration: float = 60.0
    workers: int = 1
    top_k: int = 5
    max_batch: int = 8
    batch_window_ms: float = 5.0
    queue_limit: int = 64
    bf16: bool = False
    fp16: bool = False
    device: str = "auto"
    trust_remote_code: bool = False

    def validate(self) -> ServeOptions:
        positive = {"max_upload_mb": self.max_upload_mb, "max_duration": self.max_duration,
                    "workers": self.workers, "top_k": self.top_k, "max_batch": self.max_batch,
                    "queue_limit": self.queue_limit}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.batch_window_ms < 0 or not 0 <= self.port < 65536:
            raise ValueError("--batch-window-ms must be >= 0 and --port within 0..65535")
        check_device_spec(self.device)
        precision_of(self.bf16, self.fp16)
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass(frozen=True)
class Ask:
    """What a request asks for: labels per answer, the longest upload, and windows (samples) for long ones."""

    top_k: int
    max_duration: float
    windows: tuple[int, int] | None = None  # (window, hop): the whole recording in windows, as `predict --window`


class ApiError(Exception):
    """An answer of `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def create_app(model: str | Path | Classifier, options: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app for one model: a folder (loaded in the background; `/readyz` says when) or a
    loaded Classifier.

    >>> import uvicorn; uvicorn.run(create_app("runs/minds"))   # doctest: +SKIP
    """
    options = (options or ServeOptions()).validate()
    state = ModelState(model, options)
    app = FastAPI(title="audioclf", summary="Audio classification API", lifespan=state.lifespan)
    _add_error_handlers(app)
    _add_routes(app, state, options)
    return app


class ModelState:
    """The classifier and its batcher, created at startup; requests before the load ends get 503."""

    def __init__(self, model: str | Path | Classifier, options: ServeOptions) -> None:
        self.source = model
        self.options = options
        self.classifier: Classifier | None = model if isinstance(model, Classifier) else None
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(self._load())
        yield
        loading.cancel()
        if self.batcher is not None:
            await self.batcher.stop()

    async def _load(self) -> None:
        try:
            if self.classifier is None:
                self.classifier = await asyncio.to_thread(
                    Classifier.load, self.source, self.options.trust_remote_code, self.options.bf16,
                    self.options.fp16, self.options.device)
        except Exception as err:  # reported by /readyz and every request, not a dead process
            self.load_error = f"{type(err).__name__}: {err}"
            log.error("could not load %s: %s", self.source, self.load_error)
            return
        opts = self.options
        self.batcher = MicroBatcher(self._score, opts.max_batch, opts.batch_window_ms / 1000, opts.queue_limit)
        self.batcher.start()
        log.info("model %s ready: %d labels", self.classifier.name, len(self.classifier.labels))

    def _score(self, waves: list[np.ndarray]) -> np.ndarray:
        assert self.classifier is not None
        return self.classifier.probabilities(waves, batch_size=self.options.max_batch)

    def ready(self) -> tuple[Classifier, MicroBatcher]:
        if self.classifier is None or self.batcher is None:
            message = f"model failed to load: {self.load_error}" if self.load_error else "model is still loading"
            raise ApiError(503, "not_ready", message, {"Retry-After": "1"})
        return self.classifier, self.batcher


def _add_routes(app: FastAPI, state: ModelState, options: ServeOptions) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("audioclf.inference").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        clf, _ = state.ready()
        return {"status": "ready", "model": clf.name}

    @app.get("/v1/labels")
    async def labels() -> dict[str, Any]:
        clf, _ = state.ready()
        return {"labels": clf.labels, "model": clf.name}

    @app.post("/v1/classify", openapi_extra=UPLOAD_BODY)
    async def classify(request: Request, top_k: str | None = None, window: str | None = None,
                       hop: str | None = None) -> dict[str, Any]:
        """One clip: multipart field `file`, or the raw audio as the body with an `audio/*` type."""
        clf, batcher = state.ready()
        uploads, fields = await read_uploads(request, options.max_upload_bytes)
        if len(uploads) != 1:
            raise ApiError(400, "bad_request", f"expected one audio file, got {len(uploads)}")
        ask = parse_ask(clf, options, {"top_k": top_k, "window": window, "hop": hop, **fields})
        return await classify_one(clf, batcher, *uploads[0], ask)

    @app.post("/v1/classify/batch", openapi_extra=BATCH_BODY)
    async def classify_batch(request: Request, top_k: str | None = None, window: str | None = None,
                             hop: str | None = None) -> dict[str, Any]:
        """Several clips (multipart fields `files`): one result or one error per file, in order."""
        clf, batcher = state.ready()
        uploads, fields = await read_uploads(request, options.max_upload_bytes, multipart_only=True)
        if not uploads:
            raise ApiError(400, "no_files", "send one or more multipart fields named `files`")
        ask = parse_ask(clf, options, {"top_k": top_k, "window": window, "hop": hop, **fields})
        results = await asyncio.gather(*(classify_or_error(clf, batcher, name, data, ask) for name, data in uploads))
        return {"results": list(results), "model": clf.name}


async def classify_one(clf: Classifier, batcher: MicroBatcher, name: str, data: bytes, ask: Ask) -> dict[str, Any]:
    """One upload's top labels, or with `ask.windows` each window's: `{"windows": [{"start_s", "end_s",
    "predictions"}, ...]}`."""
    wave, duration = await run_in_threadpool(decode_upload, clf, name, data, ask.max_duration, ask.windows is None)
    answer: dict[str, Any] = {"duration_s": round(duration, 3), "model": clf.name}
    try:
        if ask.windows is None:
            return {"predictions": clf.top_labels(await batcher.submit(wave), ask.top_k), **answer}
        bounds = window_bounds(len(wave), *ask.windows)
        scores = await submit_in_turns(batcher, cut_windows(wave, bounds))
        return {"windows": window_predictions(clf, bounds, scores, ask.top_k), **answer}
    except Overloaded as err:
        raise ApiError(503, "overloaded", f"server is busy ({err}); retry shortly", {"Retry-After": "1"}) from None


async def submit_in_turns(batcher: MicroBatcher, waves: list[np.ndarray]) -> list[np.ndarray]:
    """The scores of many waveforms from one request, at most a batch of them waiting at a time, so that one long
    recording cannot fill the queue that other requests share."""
    scores: list[np.ndarray] = []
    for start in range(0, len(waves), batcher.max_batch):
        scores += await asyncio.gather(*(batcher.submit(wave) for wave in waves[start:start + batcher.max_batch]))
    return scores


async def classify_or_error(clf: Classifier, batcher: MicroBatcher, name: str, data: bytes,
                            ask: Ask) -> dict[str, Any]:
    try:
        return {"filename": name, **await classify_one(clf, batcher, name, data, ask)}
    except ApiError as err:
        if err.status == 503:
            raise
        return {"filename": name, "error": {"code": err.code, "message": err.message}}


def decode_upload(clf: Classifier, name: str, data: bytes, max_duration: float,
                  crop: bool = True) -> tuple[np.ndarray, float]:
    """Bytes -> the model's waveform (`crop`: cut to the run's max_duration, as `predict` does) and the clip's
    duration, or ApiError saying what is wrong with it."""
    if not data:
        raise ApiError(400, "empty_body", f"{name}: no audio data was sent")
    try:
        wave, rate = decode(data, name)
        validate(wave, name)
        duration = wave.size / rate
        if duration > max_duration:
            raise ApiError(422, "too_long", f"{name}: {duration:.1f} s of audio, the limit is {max_duration:g} s")
        return clf.prepare(wave, rate, crop=crop), duration
    except UndecodableAudio as err:
        raise ApiError(415, "unsupported_media_type",
                       f"{err} (send wav, flac, ogg or mp3)") from None
    except AudioError as err:
        raise ApiError(422, "invalid_audio", f"{name}: {err.reason}") from None


def parse_ask(clf: Classifier, options: ServeOptions, fields: dict[str, str | None]) -> Ask:
    """The request's `top_k`, `window` and `hop` (query or form fields), checked as `predict --window` checks them."""
    top_k = parse_top_k(fields["top_k"], options.top_k)
    window, hop = (parse_seconds(name, fields[name]) for name in ("window", "hop"))
    if window is None:
        if hop is not None:
            raise ApiError(422, "invalid_window", "hop needs window: send both, in seconds")
        return Ask(top_k, options.max_duration)
    try:
        return Ask(top_k, options.max_duration, window_samples(clf, window, hop))
    except ConfigError as err:
        raise ApiError(422, "invalid_window", str(err).replace("--", "")) from None


def parse_seconds(name: str, raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ApiError(422, "invalid_window", f"{name} must be a number of seconds, got {raw!r}") from None


def parse_top_k(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ApiError(422, "invalid_top_k", f"top_k must be a whole number >= 1, got {raw!r}")
    return value


async def read_uploads(request: Request, limit: int, multipart_only: bool = False
                       ) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The uploaded files (name, bytes) and plain form fields of a multipart or raw-audio request."""
    content_type = request.headers.get("content-type", "").lower()
    body = await read_body_limited(request, limit)
    if content_type.startswith("multipart/form-data"):
        return await parse_multipart(request, body, limit)
    if multipart_only:
        raise ApiError(415, "unsupported_media_type", "send the files as multipart/form-data fields `files`")
    if not body:
        raise ApiError(400, "empty_body", "the request has no body: send an audio file")
    if not content_type.startswith(RAW_AUDIO_TYPES):
        raise ApiError(415, "unsupported_media_type",
                       f"content type {content_type or 'missing'!r}: send audio/* or a multipart field `file`")
    return [("upload", body)], {}


async def read_body_limited(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it passes `limit` bytes, before the rest arrives."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"upload is larger than the limit of {limit / 1024 / 1024:g} MB")


async def parse_multipart(request: Request, body: bytes, limit: int
                          ) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_part_size=limit)
    uploads, fields = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append((value.filename or key, await value.read()))
        else:
            fields[key] = value
    return uploads, fields


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return answer(err.status, err.code, err.message, err.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return answer(err.status_code, STATUS_CODES.get(err.status_code, "error"), str(err.detail), err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return answer(422, "invalid_request", problems)


def serve(model: str | Path, options: ServeOptions) -> None:
    """Run the server until interrupted; `workers > 1` starts that many processes, each with the model."""
    import uvicorn

    options.validate()
    if options.workers == 1:
        uvicorn.run(create_app(model, options), host=options.host, port=options.port, log_level="info")
        return
    os.environ[APP_ENV] = json.dumps({"model": str(model), "options": asdict(options)})
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=options.host, port=options.port,
                workers=options.workers, log_level="info")


def app_from_environment() -> FastAPI:
    """The app of one worker process started by `serve(..., workers=N)`."""
    settings = json.loads(os.environ[APP_ENV])
    return create_app(settings["model"], ServeOptions(**settings["options"]))
