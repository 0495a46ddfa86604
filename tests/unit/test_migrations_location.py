from __future__ import annotations

from app.kit.migrations import head_revisions, migrations_dir


def test_migrations_are_found_and_have_a_single_head() -> None:
    assert (migrations_dir() / "env.py").is_file()
    assert len(head_revisions()) == 1
