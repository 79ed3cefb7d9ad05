"""Real `pfnode serve` processes on one database, for concurrency and failover tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from node.demo import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServeProcess:
    data: Path
    db: str | None
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        cmd = [
            sys.executable,
            "-m",
            "node.cli",
            "serve",
            "--data",
            str(self.data),
            "--port",
            str(self.port),
            *self.extra,
        ]
        if self.db:
            cmd += ["--db", self.db]
        with open(self.data / f"serve-{self.port}.log", "w") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=log, text=True, env=os.environ.copy()
            )
        return self

    def wait_healthy(self, seconds: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError((self.data / f"serve-{self.port}.log").read_text())
            try:
                r = httpx.get(f"{self.base}/healthz", timeout=1)
                if r.status_code in (200, 503):
                    health: dict[str, object] = r.json()
                    return health
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve on {self.port} did not answer")

    def role(self) -> str:
        return str(httpx.get(f"{self.base}/healthz", timeout=2).json()["role"])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def tokens(data: Path) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((data / "demo-tokens.json").read_text())
    return loaded
