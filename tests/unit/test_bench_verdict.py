"""``python -m bench`` fails when any section misses a target, not only provisioning:
a run whose API or memory falls short must not look green."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.__main__ as bench_main


@pytest.mark.parametrize(
    ("missing", "expected"),
    [(None, 0), ("api", 1), ("provision", 1), ("memory", 1)],
    ids=["all-met", "api-missed", "provision-missed", "memory-missed"],
)
def test_the_exit_status_counts_every_sections_verdict(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    missing: str | None,
    expected: int,
) -> None:
    for part in bench_main.PARTS:
        verdict = part != missing

        def section(
            *_args: object, part: str = part, verdict: bool = verdict, **_kw: object
        ) -> tuple[str, bool]:
            return f"## {part}", verdict

        monkeypatch.setattr(getattr(bench_main, part), "section", section)
    output = tmp_path / "latest.md"
    assert bench_main.main(["--output", str(output)]) == expected
    report = output.read_text(encoding="utf-8")
    assert all(f"## {part}" in report for part in bench_main.PARTS)
    printed = capsys.readouterr().out
    if missing is None:
        assert "targets missed" not in printed
    else:
        assert f"targets missed in: {missing}" in printed
