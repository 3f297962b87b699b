"""Atomic writes never follow a link planted where a temporary file used to be written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.outputs import output_target, write_output


def test_a_planted_partial_link_does_not_redirect_an_output(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    root.mkdir()
    victim = tmp_path / "governance.db"
    victim.write_bytes(b"the store")
    (root / ".evil.parquet.partial").symlink_to(victim)  # the name the old code wrote through
    target = output_target(root, "evil.parquet", "default.parquet")
    write_output(pd.DataFrame({"x": [1, 2]}), target, "batch-1")
    assert victim.read_bytes() == b"the store"
    assert not target.is_symlink() and pd.read_parquet(target)["x"].tolist() == [1, 2]
