"""A small closed-loop HTTP/1.1 load generator for ``bench.api``.

Run::

    python -m bench.loadgen --spec SPEC.json

``SPEC.json`` says where and what to send::

    {"host": "127.0.0.1", "port": 8000, "method": "GET",
     "paths": ["/api/v1/orders/1", "/api/v1/orders/2"],
     "headers": {"Authorization": "Bearer ..."},
     "body": null, "expect": 200,
     "connections": 32, "warmup": 2.0, "duration": 8.0}

Each of ``connections`` keep-alive connections sends one request, reads the whole
answer, and sends the next (a closed loop: the offered load is whatever the
server sustains). ``paths`` are used in turn. In a ``body``, every ``__SEQ__`` is
replaced by a number unique within this process, so each POST can carry its own
external id.

Answers completed during the first ``warmup`` seconds are not counted; then it
prints ``{"event": "measuring"}`` (the caller starts its CPU readings there),
counts for ``duration`` seconds, and prints one JSON line: successes, errors
(other status or transport failure), req/s, latency percentiles in milliseconds
and every latency (so that a caller can merge several runs' percentiles), and the
CPU this process used while measuring, so a caller can tell whether the load
generator itself was the bottleneck.

Deliberately lean: raw requests over asyncio streams (uvloop when installed),
requests pre-encoded, no HTTP library on the hot path. It depends on nothing
outside the standard library (and optionally uvloop), so it can also run as a
plain script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEQ_MARKER = "__SEQ__"
MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Spec:
    host: str
    port: int
    method: str
    paths: list[str]
    headers: dict[str, str]
    body: str | None
    expect: int
    connections: int
    warmup: float
    duration: float

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Spec:
        paths = [str(p) for p in raw["paths"]]
        if not paths:
            raise ValueError("spec needs at least one path")
        return cls(
            host=str(raw.get("host", "127.0.0.1")),
            port=int(raw["port"]),
            method=str(raw.get("method", "GET")).upper(),
            paths=paths,
            headers={str(k): str(v) for k, v in dict(raw.get("headers", {})).items()},
            body=None if raw.get("body") is None else str(raw["body"]),
            expect=int(raw.get("expect", 200)),
            connections=max(1, int(raw.get("connections", 32))),
            warmup=max(0.0, float(raw.get("warmup", 2.0))),
            duration=float(raw.get("duration", 8.0)),
        )


def request_factory(spec: Spec) -> Callable[[], bytes]:
    """Returns a function that builds the next request's bytes, cheaply."""
    head_lines = [f"Host: {spec.host}:{spec.port}"]
    head_lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    common = "\r\n".join(head_lines).encode("latin-1")
    paths = [p.encode("latin-1") for p in spec.paths]
    method = spec.method.encode()
    counter = 0

    if spec.body is None:
        fixed = [method + b" " + p + b" HTTP/1.1\r\n" + common + b"\r\n\r\n" for p in paths]

        def next_get() -> bytes:
            nonlocal counter
            counter += 1
            return fixed[counter % len(fixed)]

        return next_get

    parts = [part.encode() for part in spec.body.split(SEQ_MARKER)]

    def next_with_body() -> bytes:
        nonlocal counter
        counter += 1
        body = str(counter).encode().join(parts)
        path = paths[counter % len(paths)]
        return b"".join(
            (
                method,
                b" ",
                path,
                b" HTTP/1.1\r\n",
                common,
                b"\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    return next_with_body


class ProtocolError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server wants the connection closed) of one HTTP/1.1 answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ProtocolError(f"bad status line {head[:40]!r}") from None
    length: int | None = None
    chunked = False
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            close = b"close" in value.lower()
    if chunked:
        chunks: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(chunks), close
    if length is None:
        # No framing: the body runs to the end of the connection.
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


@dataclass
class Tally:
    measuring: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        if not self.measuring:
            return
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text[:300])


async def connection_loop(spec: Spec, next_request: Callable[[], bytes], tally: Tally) -> None:
    writer: asyncio.StreamWriter | None = None
    try:
        while True:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(spec.host, spec.port)
                except OSError as exc:
                    tally.error(f"connect: {exc}")
                    await asyncio.sleep(0.05)
                    continue
            started = time.perf_counter()
            try:
                writer.write(next_request())
                status, body, close = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ProtocolError, ValueError) as exc:
                tally.error(f"{type(exc).__name__}: {exc}")
                writer.close()
                writer = None
                continue
            elapsed = time.perf_counter() - started
            if status == spec.expect:
                if tally.measuring:
                    tally.latencies.append(elapsed)
            else:
                tally.error(f"{status} {body[:200].decode('utf-8', 'replace')}")
            if close:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


async def run(spec: Spec, emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    tally = Tally()
    next_request = request_factory(spec)
    tasks = [
        asyncio.create_task(connection_loop(spec, next_request, tally))
        for _ in range(spec.connections)
    ]
    try:
        await asyncio.sleep(spec.warmup)
        tally.measuring = True
        emit({"event": "measuring"})
        cpu_start = time.process_time()
        started = time.perf_counter()
        await asyncio.sleep(spec.duration)
        # Frozen here: answers still in flight are not counted.
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_start
        latencies = sorted(tally.latencies)
        errors = tally.errors
        tally.measuring = False
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return {
        "event": "result",
        "count": len(latencies),
        "errors": errors,
        "error_samples": tally.error_samples,
        "seconds": round(seconds, 4),
        "rps": round(len(latencies) / seconds, 2) if seconds > 0 else 0.0,
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "p90_ms": _ms(percentile(latencies, 0.90)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "max_ms": _ms(latencies[-1] if latencies else None),
        "mean_ms": _ms(sum(latencies) / len(latencies) if latencies else None),
        "latencies_ms": [_ms(value) for value in latencies],
        "cpu_seconds": round(cpu, 4),
        # Of one CPU: the generator is one single-threaded process.
        "cpu_share": round(cpu / seconds, 4) if seconds > 0 else 0.0,
        "connections": spec.connections,
        "loop": _loop_name(),
    }


def _loop_name() -> str:
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__name__}"


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--spec", type=Path, required=True, help="JSON file (see the docstring)")
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's own event loop even with uvloop"
    )
    args = parser.parse_args(argv)
    spec = Spec.from_json(json.loads(args.spec.read_text(encoding="utf-8")))

    async def measure() -> None:
        _emit(await run(spec, _emit))

    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(measure())
            return 0
    asyncio.run(measure())
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        sys.exit(main())
