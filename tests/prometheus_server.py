"""A real Prometheus (Debian's `prometheus` package) on loopback for the tests, and its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: `apt-get install prometheus` (./run tests does it)")
    return path


@dataclass
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:  # noqa: S310
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = self.api("query", query=expr, time=f"{at:.3f}")
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        assert data["resultType"] in ("vector", "matrix"), data
        return list(result)

    def samples(self, selector: str, window_s: float, at: float) -> list[tuple[int, float]]:
        """The raw samples (ms, value) of the single series `selector` matches in [at - window, at]."""
        result = self.query(f"{selector}[{int(window_s * 1000)}ms]", at)
        assert len(result) == 1, (selector, result)
        return [(round(float(t) * 1000), float(v)) for t, v in result[0]["values"]]


@contextmanager
def running_prometheus(
    tmp: Path, scrape_target: str, job: str, rule_files: list[Path]
) -> Iterator[Prometheus]:
    """Prometheus scraping `scrape_target` every second as job `job`, evaluating `rule_files` every second."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [scrape_target]}]}],
    }
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prometheus did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# What Prometheus computes, written out from its documented definitions, for the expressions whose
# ranges cannot be aligned on scrapes (fixed windows such as [1h] or [15m]).


def extrapolated_increase(samples: list[tuple[int, float]], start_ms: int, end_ms: int) -> float | None:
    """`increase()` of a counter over (start, end] as Prometheus 2.x extrapolates it."""
    if len(samples) < 2:
        return None
    first_t, first_v = samples[0]
    last_t, last_v = samples[-1]
    delta = last_v - first_v
    previous = 0.0
    for _, value in samples:
        if value < previous:
            delta += previous
        previous = value
    to_start = (first_t - start_ms) / 1000
    to_end = (end_ms - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / (len(samples) - 1)
    if delta > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / delta))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return delta * (interval / sampled)


def least_squares_slope(samples: list[tuple[int, float]]) -> float:
    """`deriv()`: the least-squares slope per second, computed exactly."""
    if len({value for _, value in samples}) == 1:
        return 0.0
    xs = [Fraction(t, 1000) for t, _ in samples]
    ys = [Fraction(value) for _, value in samples]
    n = len(samples)
    mean_x = sum(xs, Fraction(0)) / n
    mean_y = sum(ys, Fraction(0)) / n
    covariance = sum(((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)), Fraction(0))
    variance = sum(((x - mean_x) ** 2 for x in xs), Fraction(0))
    return float(covariance / variance)
