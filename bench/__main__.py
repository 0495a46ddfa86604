"""`make bench`: every benchmark in one run, written to ``bench/results/latest.md``.

    python -m bench                      # API, provisioning, memory
    python -m bench --quick              # smaller and shorter, to try the set-up
    python -m bench --only provision -- --orders 200 --db postgres

Arguments after ``--`` go to ``bench.provision`` (see ``python -m bench.provision -h``).
The parts run one after another, never side by side, so that each has the
machine to itself; each part's own report says what else was using it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import api, memory, provision
from bench.common import REPO

RESULTS_DIR = REPO / "bench" / "results"
LATEST = RESULTS_DIR / "latest.md"
PARTS = ("api", "provision", "memory")
# --quick: bursts of 20 and 50 orders with a 10 s install, instead of the default sizes.
QUICK_PROVISION = ("--orders", "20", "50", "--op-seconds", "10", "--ip-seconds", "1")


def _machine() -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{platform.node()}: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, code at {commit or 'unknown commit'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, passthrough = args_list[:cut], args_list[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts"
    )
    parser.add_argument("--output", type=Path, default=LATEST)
    args = parser.parse_args(args_list)
    results_dir: Path = args.output.parent
    results_dir.mkdir(parents=True, exist_ok=True)

    provision_args = [*(QUICK_PROVISION if args.quick else ()), *passthrough]
    sections = {
        "api": lambda: api.section(results_dir, quick=args.quick),
        "memory": lambda: memory.section(results_dir, quick=args.quick),
        "provision": lambda: provision.section(results_dir, provision_args),
    }
    verdicts: dict[str, bool] = {}

    started = time.monotonic()
    texts: list[str] = []
    for part in (p for p in PARTS if p in args.only):
        print(f"\n##### {part} #####", flush=True)
        part_started = time.monotonic()
        text, verdicts[part] = sections[part]()
        texts.append(text)
        print(f"##### {part}: {time.monotonic() - part_started:.0f} s", flush=True)

    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    header = [
        "# Benchmark results",
        "",
        f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s.",
        "",
        f"Machine: {_machine()}.",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n\n".join(texts) + "\n"
    args.output.write_text(text, encoding="utf-8")
    print(f"\nwritten to {args.output}")
    missed = [part for part, passed in verdicts.items() if not passed]
    if missed:
        print(f"targets missed in: {', '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
