"""`audioclf serve`: every endpoint, every bad input, the micro-batcher, and a real server process."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf
from conftest import TONES, tone

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'audioclf[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from audioclf.inference import Classifier  # noqa: E402
from audioclf.inference.batching import MicroBatcher, Overloaded  # noqa: E402
from audioclf.inference.server import ServeOptions, create_app  # noqa: E402


def wav_bytes(wave: np.ndarray, rate: int = 16000, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clips(trained_run: tuple[Path, Path]) -> list[Path]:
    return sorted(trained_run[1].rglob("*.wav"))[::4]


@pytest.fixture(scope="module")
def client(trained_run: tuple[Path, Path]) -> Iterator[TestClient]:
    options = ServeOptions(max_upload_mb=1, max_duration=5)
    with TestClient(create_app(Classifier.load(trained_run[0]), options)) as test_client:
        yield test_client


def expected(run: Path, path: Path, top_k: int = 3) -> list[dict]:
    return Classifier.load(run).predict([path], top_k=top_k)[0]


def assert_error(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_health_readiness_labels_and_schema(client: TestClient, trained_run: tuple[Path, Path]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model": "run"}
    assert client.get("/v1/labels").json()["labels"] == ["high", "low", "mid"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/classify/batch", "/v1/labels", "/healthz", "/readyz"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/classify"]["post"]["requestBody"]["content"]


def test_multipart_and_raw_uploads_match_predict(client: TestClient, trained_run: tuple[Path, Path],
                                                  clips: list[Path]) -> None:
    for path in clips:
        want = expected(trained_run[0], path)
        multipart = client.post("/v1/classify", files={"file": (path.name, path.read_bytes())}, data={"top_k": "3"})
        raw = client.post("/v1/classify?top_k=3", content=path.read_bytes(), headers={"content-type": "audio/wav"})
        for answer in (multipart.json(), raw.json()):
            assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in want]
            np.testing.assert_allclose([p["score"] for p in answer["predictions"]], [p["score"] for p in want],
                                       atol=1e-5)
            assert answer["duration_s"] == pytest.approx(sf.info(path).duration, abs=1e-3)
            assert answer["model"] == "run"


def test_flac_ogg_and_mp3_uploads_are_classified(client: TestClient) -> None:
    wave = tone(660.0, 0.8, 16000, np.random.default_rng(0))
    for fmt, subtype in (("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")):
        answer = client.post("/v1/classify", files={"file": (f"clip.{fmt.lower()}", wav_bytes(wave, fmt=fmt,
                                                                                             subtype=subtype))})
        assert answer.status_code == 200, (fmt, answer.text)
        assert len(answer.json()["predictions"]) == 3  # top_k 5 capped at the 3 labels


def test_batch_gives_one_result_or_error_per_file_in_order(client: TestClient, trained_run: tuple[Path, Path],
                                                            clips: list[Path]) -> None:
    files = [("files", (clips[0].name, clips[0].read_bytes())), ("files", ("notes.wav", b"not audio at all")),
             ("files", (clips[1].name, clips[1].read_bytes()))]
    results = client.post("/v1/classify/batch", files=files, data={"top_k": "1"}).json()["results"]
    assert [r["filename"] for r in results] == [clips[0].name, "notes.wav", clips[1].name]
    assert results[1]["error"]["code"] == "unsupported_media_type"
    for result, path in ((results[0], clips[0]), (results[2], clips[1])):
        assert result["predictions"][0]["label"] == expected(trained_run[0], path, 1)[0]["label"]
    assert_error(client.post("/v1/classify/batch", files={"top_k": (None, "1")}), 400, "no_files")
    assert_error(client.post("/v1/classify/batch", data={"top_k": "1"}), 415, "unsupported_media_type")


@pytest.fixture(scope="module")
def three_tones() -> bytes:
    """4.5 s at 8 kHz: low, then high, then mid, 1.5 s each (within the client's 5 s limit)."""
    rng = np.random.default_rng(11)
    return wav_bytes(np.concatenate([tone(TONES[label], 1.5, 8000, rng) for label in ("low", "high", "mid")]), 8000)


def test_windows_of_an_upload_score_as_predict_windows(client: TestClient, trained_run: tuple[Path, Path],
                                                       three_tones: bytes, tmp_path: Path) -> None:
    recording = tmp_path / "low-high-mid.wav"
    recording.write_bytes(three_tones)
    [want] = Classifier.load(trained_run[0]).predict_windows([recording], 1.0, 0.5, top_k=3)
    answer = client.post("/v1/classify?window=1&hop=0.5&top_k=3", content=three_tones,
                         headers={"content-type": "audio/wav"}).json()
    assert "predictions" not in answer and answer["duration_s"] == 4.5
    assert [(w["start_s"], w["end_s"]) for w in answer["windows"]] == [(s / 2, s / 2 + 1) for s in range(8)]
    for got, window in zip(answer["windows"], want):
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in window["predictions"]]
        np.testing.assert_allclose([p["score"] for p in got["predictions"]],
                                   [p["score"] for p in window["predictions"]], atol=1e-5)
    assert [answer["windows"][i]["predictions"][0]["label"] for i in (0, 3, 6)] == ["low", "high", "mid"]
    files = [("files", ("a.wav", three_tones)), ("files", ("b.wav", three_tones))]
    results = client.post("/v1/classify/batch", files=files, data={"window": "1.5", "top_k": "1"}).json()["results"]
    assert [[w["predictions"][0]["label"] for w in r["windows"]] for r in results] == [["low", "high", "mid"]] * 2


def test_bad_windows_get_422_with_the_reason(client: TestClient, three_tones: bytes) -> None:
    raw = {"content-type": "audio/wav"}
    for query, reason in [("window=abc", "number of seconds"), ("hop=1", "hop needs window"),
                          ("window=0", "window must be > 0"), ("window=inf", "window must be > 0"),
                          ("window=1&hop=2", "hop in (0, window]"), ("window=20", "max_duration")]:
        error = assert_error(client.post(f"/v1/classify?{query}", content=three_tones, headers=raw), 422,
                             "invalid_window")
        assert reason in error["message"], (query, error)


def test_a_long_upload_in_windows_does_not_fill_the_shared_queue(trained_run: tuple[Path, Path],
                                                                 three_tones: bytes) -> None:
    eleven_s = wav_bytes(np.tile(sf.read(io.BytesIO(three_tones), dtype="float32")[0], 3)[:11 * 8000], 8000)
    options = ServeOptions(max_batch=2, batch_window_ms=0, queue_limit=2, max_duration=12)
    with TestClient(create_app(Classifier.load(trained_run[0]), options)) as small:
        answer = small.post("/v1/classify?window=1", content=eleven_s, headers={"content-type": "audio/wav"})
    assert answer.status_code == 200, answer.text
    windows = answer.json()["windows"]  # 11 through a queue that holds 2; the run's 10 s crop not applied
    assert [w["end_s"] for w in windows] == [float(s) for s in range(1, 12)]


def test_bad_inputs_get_clear_4xx(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    good = wav_bytes(tone(220.0, 1.0, 16000, rng))
    nan = tone(220.0, 0.5, 16000, rng)
    nan[100] = np.nan
    too_long = wav_bytes(tone(220.0, 6.0, 8000, rng), rate=8000)  # limit is 5 s
    raw = {"content-type": "audio/wav"}
    assert_error(client.post("/v1/classify", content=b"", headers=raw), 400, "empty_body")
    assert_error(client.post("/v1/classify", files={"file": ("empty.wav", b"")}), 400, "empty_body")
    assert_error(client.post("/v1/classify", content=b"hello " * 100, headers=raw), 415, "unsupported_media_type")
    assert_error(client.post("/v1/classify", content=good, headers={"content-type": "text/plain"}), 415,
                 "unsupported_media_type")
    message = assert_error(client.post("/v1/classify", files={"file": ("cut.wav", good[:5000])}), 422,
                           "invalid_audio")["message"]
    assert "cut.wav" in message and "truncated" in message
    nan_upload = {"file": ("nan.wav", wav_bytes(nan, subtype="FLOAT"))}
    assert "NaN" in assert_error(client.post("/v1/classify", files=nan_upload), 422, "invalid_audio")["message"]
    assert_error(client.post("/v1/classify", content=too_long, headers=raw), 422, "too_long")
    blip = wav_bytes(tone(220.0, 0.001, 16000, rng))  # 16 samples: fewer than the encoder reads for one frame
    message = assert_error(client.post("/v1/classify", files={"file": ("blip.wav", blip)}), 422,
                           "invalid_audio")["message"]
    assert "blip.wav" in message and "too short" in message
    assert_error(client.post("/v1/classify", content=b"\0" * (2 << 20), headers=raw), 413, "too_large")
    for top_k in ("0", "-2", "three", "1.5"):
        assert_error(client.post(f"/v1/classify?top_k={top_k}", content=good, headers=raw), 422, "invalid_top_k")
    assert_error(client.post("/v1/classify", files=[("file", ("a.wav", good)), ("file", ("b.wav", good))]), 400,
                 "bad_request")
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/classify"), 405, "method_not_allowed")


def test_model_that_fails_to_load_is_not_ready(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path)) as broken:
        deadline = time.monotonic() + 10
        while "loading" in broken.get("/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "not a model folder" in assert_error(broken.get("/readyz"), 503, "not_ready")["message"]
        assert_error(broken.post("/v1/classify", content=b"x", headers={"content-type": "audio/wav"}), 503,
                     "not_ready")
        assert broken.get("/healthz").status_code == 200


def test_batcher_groups_concurrent_requests_and_bounds_its_queue() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def run_batch(waves: list[np.ndarray]) -> np.ndarray:
        release.wait(5)
        sizes.append(len(waves))
        return np.stack([w[:2] for w in waves])

    async def scenario() -> list:
        batcher = MicroBatcher(run_batch, max_batch=4, window_s=0.05, queue_limit=5)
        batcher.start()
        requests = [asyncio.create_task(batcher.submit(np.full(3, i, np.float32))) for i in range(5)]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await batcher.submit(np.zeros(3, np.float32))
        release.set()
        results = await asyncio.gather(*requests)
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert sizes == [4, 1]  # four collected within the window, the fifth in the next batch
    assert [float(r[0]) for r in results] == [0, 1, 2, 3, 4]  # each request gets its own row


def test_overloaded_server_answers_503_with_retry_after(trained_run: tuple[Path, Path]) -> None:
    gate = threading.Event()
    clf = Classifier.load(trained_run[0])
    real = clf.probabilities
    clf.probabilities = lambda waves, batch_size=8, progress=False: (gate.wait(10), real(waves, batch_size))[1]
    options = ServeOptions(max_batch=1, batch_window_ms=0, queue_limit=1)
    wav = wav_bytes(tone(220.0, 0.5, 16000, np.random.default_rng(2)))
    with TestClient(create_app(clf, options)) as busy:
        first = threading.Thread(target=busy.post, args=("/v1/classify",),
                                 kwargs={"content": wav, "headers": {"content-type": "audio/wav"}})
        first.start()
        time.sleep(0.5)
        refused = busy.post("/v1/classify", content=wav, headers={"content-type": "audio/wav"})
        gate.set()
        first.join()
    assert_error(refused, 503, "overloaded")
    assert refused.headers["retry-after"] == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(trained_run: tuple[Path, Path]) -> Iterator[str]:
    """`audioclf serve` as its own process on a free loopback port."""
    import httpx

    port = free_port()
    command = [str(Path(sys.executable).parent / "audioclf"), "serve", str(trained_run[0]), "--port", str(port),
               "--max-upload-mb", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"server did not become ready: {process.communicate()[0][-2000:]}")
    yield url
    process.terminate()
    process.wait(10)


def test_upload_over_the_limit_is_refused_while_streaming(live_server: str) -> None:
    """A chunked upload (no Content-Length) is answered 413 once it passes 1 MB, while the client still sends."""
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"\0" * 65536
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        while sent < 64 and not answer:  # up to 4 MB, stopping as soon as the server answers
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += 1
            try:
                answer = sock.recv(65536)
            except socket.timeout:
                pass
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64  # answered before the client finished sending
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert b"too_large" in body or not body


@pytest.mark.slow
def test_page_shows_same_top_label_as_predict_in_a_real_browser(live_server: str, trained_run: tuple[Path, Path],
                                                                 clips: list[Path], three_tones: bytes) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (`make test-all` installs it where apt-get can)")
    clip = clips[0]
    predicted = subprocess.run([str(Path(sys.executable).parent / "audioclf"), "predict", str(trained_run[0]),
                                str(clip), "--format", "json", "--top-k", "1"],
                               capture_output=True, text=True, check=True)
    top_label = json.loads(predicted.stdout)["predictions"][0]["label"]
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page()
            page.goto(live_server)
            page.wait_for_selector("#labels li", state="attached")  # inside a closed <details>
            assert page.locator("#labels li").all_text_contents() == ["high", "low", "mid"]
            page.get_by_label("Choose an audio file").set_input_files(str(clip))
            page.wait_for_selector("#results li")
            shown = page.locator("#results .label").all_inner_texts()
            assert shown[0] == top_label
            assert len(shown) == 3
            assert "top label" in page.get_by_role("status").inner_text()
            page.get_by_label("Window (s)").fill("1.5")
            page.get_by_label("Choose an audio file").set_input_files(
                {"name": "low-high-mid.wav", "mimeType": "audio/wav", "buffer": three_tones})
            page.wait_for_selector("text=in 3 windows")
            assert page.locator("#results .where").all_inner_texts() == [
                "0.00–1.50 s: ", "1.50–3.00 s: ", "3.00–4.50 s: "]
            assert page.locator("#results .label").all_inner_texts() == ["low", "high", "mid"]
        finally:
            browser.close()


def test_serve_refuses_a_folder_that_is_not_a_finished_model(tmp_path: Path) -> None:
    from audioclf.cli import main

    assert main(["serve", str(tmp_path)]) == 2


def test_each_worker_process_builds_the_app_from_the_environment(trained_run: tuple[Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import asdict

    from audioclf.inference.server import APP_ENV, app_from_environment

    options = ServeOptions(top_k=1, workers=2)
    monkeypatch.setenv(APP_ENV, json.dumps({"model": str(trained_run[0]), "options": asdict(options)}))
    with TestClient(app_from_environment()) as worker:
        deadline = time.monotonic() + 30
        while worker.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        wav = wav_bytes(tone(220.0, 0.5, 16000, np.random.default_rng(3)))
        answer = worker.post("/v1/classify", content=wav, headers={"content-type": "audio/wav"}).json()
    assert len(answer["predictions"]) == 1  # the worker got top_k=1 from the environment


def test_bf16_option_serves_the_bfloat16_scores(trained_run: tuple[Path, Path]) -> None:
    wave = tone(220.0, 0.5, 16000, np.random.default_rng(4))
    with TestClient(create_app(str(trained_run[0]), ServeOptions(bf16=True, top_k=1))) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        served = client.post("/v1/classify", content=wav_bytes(wave), headers={"content-type": "audio/wav"}).json()
    score = served["predictions"][0]["score"]
    decoded, _ = sf.read(io.BytesIO(wav_bytes(wave)), dtype="float32")  # what the server scored
    half, full = (Classifier.load(trained_run[0], bf16=bf16).predict([decoded], top_k=1)[0][0]["score"]
                  for bf16 in (True, False))
    assert score == pytest.approx(half, abs=1e-6) and half != full
