"""Real servers for the tests that need real HTTP: uvicorn in a thread on a free loopback
port, or a real ``lookalike serve`` subprocess. Readiness is awaited on a condition
(uvicorn's start-up hook, or its "running on" log line), never with sleeps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

from lookalike.config import Settings

__all__ = ["LiveServer", "ServeProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class LiveServer:
    """``with LiveServer(app) as url:`` serves ``app`` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = _Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        if not self.server.ready.wait(120) or not self.server.started:
            raise RuntimeError("the test server did not start")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


class ServeProcess:
    """``lookalike serve`` as a subprocess, with ``settings`` passed as LOOKALIKE_* variables."""

    def __init__(self, settings: Settings, port: int, *, log: Path) -> None:
        self.port = port
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
        env.update(
            {
                "LOOKALIKE_HOME": str(settings.home),
                "LOOKALIKE_IMAGE_MODEL": settings.image_model,
                "LOOKALIKE_TEXT_MODEL": settings.text_model,
                "LOOKALIKE_API_TOKEN": settings.api_token,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.command = [
            sys.executable, "-m", "lookalike", "serve",
            "--port", str(port), "--collection", settings.collection,
        ]  # fmt: skip
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = bytearray()
        self.reader = threading.Thread()

    def start(self, timeout: float = 120) -> str:
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
        )
        ready = threading.Event()
        self.reader = threading.Thread(target=self._drain, args=(ready,), daemon=True)
        self.reader.start()
        if not ready.wait(timeout) or b"Uvicorn running on" not in self.output:
            self.kill()
            raise RuntimeError(
                f"lookalike serve did not start:\n{self.output.decode(errors='replace')}"
            )
        return f"http://127.0.0.1:{self.port}"

    def _drain(self, ready: threading.Event) -> None:
        """Keep reading the server's output (a full pipe would block it); flag start-up."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.output += chunk
            if b"Uvicorn running on" in self.output:
                ready.set()
        ready.set()  # exited: let start() report it

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.reader.join(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log_path.write_bytes(bytes(self.output))
        return self.proc.returncode
