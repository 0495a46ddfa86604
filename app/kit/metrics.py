"""Prometheus metrics: what the process counts as it works.

Counters and histograms live in this process (the API, or a worker with its
own). Gauges that describe shared state (queue depth, worker heartbeats, inbox)
are read from the database when /metrics is scraped, so any process reports
the same truth.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)

HTTP_REQUESTS = Counter(
    "dcibridge_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "dcibridge_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
OPERATIONS = Counter(
    "dcibridge_operations_total", "Operations that reached their end", ["kind", "outcome"]
)
STEP_DURATION = Histogram(
    "dcibridge_step_duration_seconds",
    "Time one attempt of a step spends working (DCImanager calls included)",
    ["step"],
    buckets=_STEP_BUCKETS,
)
DCI_CALLS = Counter(
    "dcibridge_dci_calls_total", "Calls to DCImanager", ["method", "endpoint", "status"]
)
DCI_LATENCY = Histogram(
    "dcibridge_dci_call_duration_seconds",
    "DCImanager call latency",
    ["method", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)
CALLBACK_DELIVERIES = Counter(
    "dcibridge_callback_deliveries_total", "Callback delivery attempts", ["outcome"]
)
QUEUE_DEPTH = Gauge("dcibridge_queue_depth", "Operations not finished yet, by status", ["status"])
OLDEST_RUNNABLE_AGE = Gauge(
    "dcibridge_oldest_runnable_operation_age_seconds",
    "How long the oldest operation that could run now has been waiting",
)
WORKER_HEARTBEAT_AGE = Gauge(
    "dcibridge_worker_heartbeat_age_seconds",
    "Seconds since the freshest worker heartbeat (absent: no worker ever reported)",
)
WEBHOOK_EVENTS = Gauge(
    "dcibridge_webhook_events", "Payment webhook events in the inbox, by status", ["status"]
)
CALLBACK_EVENTS = Gauge(
    "dcibridge_callback_events", "Callbacks in the outbox, by status", ["status"]
)

_NUMBER = re.compile(r"/\d+(?=/|$)")


def dci_endpoint(path: str) -> str:
    """A DCImanager path with its ids folded, so each endpoint is one label value."""
    return _NUMBER.sub("/{id}", path.split("?", 1)[0])
