"""Load test of `audioclf serve` over loopback: N concurrent clients x M requests, batching on and off.

    python bench/serve_load.py            # 8 clients x 50 requests, real whisper-tiny.en, FSDD clips
    python bench/serve_load.py --quick    # 2 clients x 5 requests: checks the script, not the server
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import FSDD, bench_parser, print_table, require_shared, whisper_digits_model, write_results

MODES = {"batching on": ["--max-batch", "8", "--batch-window-ms", "5"],
         "batching off": ["--max-batch", "1", "--batch-window-ms", "0"]}


def main() -> None:
    parser = bench_parser(__doc__, "2 clients x 5 requests.", "serve_load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="Requests per client.")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests = 2, 5
    require_shared()
    clips = [path.read_bytes() for path in sorted(FSDD.glob("*.wav"))[:: 40]]
    with tempfile.TemporaryDirectory() as tmp:
        model = whisper_digits_model(Path(tmp) / "whisper-tiny-digits")
        runs = {mode: run_mode(model, flags, clips, args.clients, args.requests) for mode, flags in MODES.items()}
    print(f"audioclf serve, {args.clients} clients x {args.requests} requests, whisper-tiny.en (1 s context), "
          f"{len(clips)} FSDD clips")
    print_table(["mode", "requests/s", "p50 ms", "p95 ms", "p99 ms", "non-2xx"],
                [[mode, r["requests_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["non_2xx"]]
                 for mode, r in runs.items()])
    speedup = runs["batching on"]["requests_per_s"] / runs["batching off"]["requests_per_s"]
    print(f"batching on / off throughput: {speedup:.2f}x")
    path = write_results("serve_load", {"clients": args.clients, "requests_per_client": args.requests,
                                        "model": "whisper-tiny.en, fresh 10-label head, 1 s context",
                                        "modes": runs, "batching_speedup": round(speedup, 3)}, args.output)
    print(f"wrote {path}")


def run_mode(model: Path, flags: list[str], clips: list[bytes], clients: int, requests: int) -> dict[str, Any]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "audioclf"), "-q", "serve", str(model), "--port", str(port), *flags]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server)
        return measure(url, clips, clients, requests)
    finally:
        server.terminate()
        server.wait(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: server at {url} did not become ready")


def measure(url: str, clips: list[bytes], clients: int, requests: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in range(requests):
                body = clips[(offset * requests + i) % len(clips)]
                start = time.perf_counter()
                status = http.post("/v1/classify", content=body, headers={"content-type": "audio/wav"}).status_code
                with lock:
                    latencies.append(time.perf_counter() - start)
                    statuses.append(status)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"requests": len(statuses), "wall_s": round(wall, 2), "requests_per_s": round(len(statuses) / wall, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "non_2xx": sum(not 200 <= s < 300 for s in statuses)}


if __name__ == "__main__":
    main()
