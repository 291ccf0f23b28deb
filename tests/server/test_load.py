"""A short load test on loopback: 50 concurrent status polls while jobs render, no errors.

The full benchmark (the service in its own process, more polls) is bench/bench_server_load.py.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from tests.server.conftest import Media, RunningServer

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_server_load.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_server_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_fifty_concurrent_polls_while_jobs_render(
    make_server: Callable[..., RunningServer], media: Media
) -> None:
    server = make_server(demo_latency_s=1.0)
    job_ids = [server.client.post("/jobs", json=media.json_body()).json()["id"] for _ in range(2)]
    result = load_bench().poll_load(server.url, job_ids, pollers=50, polls=6)
    print(f"\n{result.summary()}")
    assert result.errors == 0 and result.requests == 300
    assert result.polls_while_rendering > 0
    for job_id in job_ids:
        assert server.wait(job_id)["status"] == "COMPLETED"
