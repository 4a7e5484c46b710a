"""A throwaway redis-server on a free loopback port, for tests that need a real Redis.

Nothing is persisted (no RDB snapshot, no AOF) and nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SKIP_VARIABLE = "TOKENBUDGET_SKIP_REDIS"


class RedisServerUnavailableError(RuntimeError):
    pass


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Kill the server and wait for it: connections are refused from then on."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel but never answered."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def redis_server_binary() -> str:
    """The redis-server path, or RedisServerUnavailableError saying how to get one."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisServerUnavailableError(
            "redis-server is not on PATH; the Redis store tests need a real server: install it"
            " (apt-get install -y redis-server) or set TOKENBUDGET_SKIP_REDIS=1 to skip them"
        )
    return binary


def skip_redis_requested() -> bool:
    return os.environ.get(SKIP_VARIABLE, "") == "1"


@contextmanager
def running_redis_server(*, start_timeout: float = 10.0) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="tokenbudget-redis-") as directory:
        server = _start(binary, directory, start_timeout)
        try:
            yield server
        finally:
            server.stop()


def _start(binary: str, directory: str, start_timeout: float) -> RedisServer:
    # Another process may take the port between our probe and the server's bind; try a few.
    last_error = ""
    for _ in range(5):
        port = _free_port()
        log_path = os.path.join(directory, f"redis-{port}.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    directory,
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if _wait_for_ping(port, process, start_timeout):
            return RedisServer(port=port, process=process)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        with open(log_path, encoding="utf-8", errors="replace") as log_file:
            last_error = log_file.read()[-2000:]
    raise RedisServerUnavailableError(f"redis-server did not answer PING; its last log:\n{last_error}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_ping(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False
