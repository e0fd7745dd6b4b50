"""Run Privia as a real uvicorn process on a free port, for tests that need a socket."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadServer:
    """An ASGI app under uvicorn in a daemon thread of this process, on a free port.

    `config` goes to uvicorn.Config as it is: each caller picks its logging,
    lifespan and protocols.
    """

    def __init__(self, app, **config):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, **config)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


class LiveServer:
    """`python privia.py` in a child process, its output kept in a log file."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "server.log"
        self.env = (
            os.environ.copy()
            | {
                "PORT": str(self.port),
                "HOST": "127.0.0.1",
                "PRIVIA_DATABASE": str(tmp_path / "live" / "privia.db"),
                "PRIVIA_PASSWORD_ROUNDS": "1000",
                "PRIVIA_CONVERSATION_COOLDOWN_SECONDS": "0",
            }
            | env
        )
        self.process = None

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "privia.py"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/api/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()

    def log(self):
        return self.log_path.read_text(errors="replace")
