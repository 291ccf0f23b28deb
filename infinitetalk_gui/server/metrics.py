"""Prometheus metrics, one registry per app (so two apps in one process never collide).

RunPod calls are timed at the transport: the pipeline's RunPod client mounts
``infinitetalk_gui.core.runpod.HTTPAdapter`` on its sessions, and :func:`instrument_runpod`
swaps in a subclass that times each request, the way OpenTelemetry's requests instrumentation
does. Only the RunPod client uses that name, so no other HTTP traffic is counted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from requests.adapters import HTTPAdapter

from infinitetalk_gui.core import runpod
from infinitetalk_gui.core.models import JobState

_ADAPTER = "HTTPAdapter"  # the name the RunPod client mounts its sessions' adapter by
_RUNPOD_ROUTE = re.compile(r"/(run|status|cancel|retry|health)(?:/|$)")
CHUNK_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class _JobsCollector(Collector):
    """``infinitetalk_jobs{state}`` and ``infinitetalk_chunks_in_flight``, read at scrape time."""

    def __init__(self, counts: Callable[[], tuple[dict[str, int], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        by_state, in_flight = self._counts()
        jobs = GaugeMetricFamily(
            "infinitetalk_jobs", "Jobs this service knows, by state", labels=["state"]
        )
        for state in JobState:
            jobs.add_metric([str(state)], by_state.get(str(state), 0))
        yield jobs
        yield GaugeMetricFamily(
            "infinitetalk_chunks_in_flight",
            "Chunks submitted to RunPod and not finished",
            value=in_flight,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "infinitetalk_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "infinitetalk_http_request_duration_seconds",
            "Time to answer an HTTP request (to the first byte of a stream)",
            ["method", "route"],
            registry=r,
        )
        self.jobs_ended = Counter(
            "infinitetalk_jobs_ended", "Jobs that reached a final state", ["state"], registry=r
        )
        self.chunk_seconds = Histogram(
            "infinitetalk_chunk_duration_seconds",
            "Per finished chunk: time waiting in RunPod's queue and time executing",
            ["phase"],
            buckets=CHUNK_BUCKETS,
            registry=r,
        )
        self.runpod_seconds = Histogram(
            "infinitetalk_runpod_request_duration_seconds",
            "RunPod API calls by route",
            ["route"],
            registry=r,
        )
        self.runpod_errors = Counter(
            "infinitetalk_runpod_errors",
            "RunPod API calls that failed: HTTP 4xx/5xx or no answer",
            ["route", "reason"],
            registry=r,
        )
        self.s3_uploads = Counter(
            "infinitetalk_s3_uploads", "push_to_s3 uploads", ["outcome"], registry=r
        )
        self.webhooks = Counter(
            "infinitetalk_webhook_deliveries", "Webhook deliveries", ["outcome"], registry=r
        )

    def watch_jobs(self, counts: Callable[[], tuple[dict[str, int], int]]) -> None:
        self.registry.register(_JobsCollector(counts))

    def observe_runpod(
        self, url: str, seconds: float, status: int | None, error: str | None
    ) -> None:
        match = _RUNPOD_ROUTE.search(url.split("?", 1)[0])
        route = match.group(1) if match else "download"
        self.runpod_seconds.labels(route).observe(seconds)
        if error is not None:
            self.runpod_errors.labels(route, error).inc()
        elif status is not None and status >= 400:
            self.runpod_errors.labels(route, f"http_{status // 100}xx").inc()


def instrument_runpod(metrics: Metrics) -> Callable[[], None]:
    """Time every RunPod call into ``metrics``; returns a function that undoes it."""
    original = getattr(runpod, _ADAPTER)

    class TimedAdapter(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                response = super().send(request, *args, **kwargs)
            except requests.Timeout:
                metrics.observe_runpod(
                    request.url or "", time.perf_counter() - started, None, "timeout"
                )
                raise
            except requests.ConnectionError:
                metrics.observe_runpod(
                    request.url or "", time.perf_counter() - started, None, "connection"
                )
                raise
            metrics.observe_runpod(
                request.url or "", time.perf_counter() - started, response.status_code, None
            )
            return response

    setattr(runpod, _ADAPTER, TimedAdapter)

    def undo() -> None:
        if getattr(runpod, _ADAPTER) is TimedAdapter:
            setattr(runpod, _ADAPTER, original)

    return undo
