"""The score command's options: where the batch comes from, the chunk size, and the terminal progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from tasks.batch_progress import bar_on

__all__ = ["SCORE_OPTIONS", "bar_on", "progress_stream"]

SCORE_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--input-path", {"help": "a Parquet or CSV file"}),
    ("--input-sql", {"help": "a SQLAlchemy database URL without a password, or env:NAME to read the URL (with its "
                             "password) from the environment variable NAME"}),
    ("--input-table", {"help": "with --input-sql: the table to score (read in the model's id order)"}),
    ("--input-query", {"help": "with --input-sql: a SELECT to score (ORDER BY a unique column, so that a killed "
                               "run resumes on the same rows)"}),
    ("--batch-rows", {"type": int, "help": "rows read, scored and written per chunk (default 100000): memory is "
                                           "bounded by it"}),
    ("--version", {}),
    ("--output-path", {}),
    ("--progress", {"action": "store_true", "default": None,
                    "help": "draw a progress bar on stderr even when it is not a terminal"}),
)


def progress_stream(args: argparse.Namespace) -> TextIO | None:
    """stderr for `score` on a terminal or with --progress; None otherwise (no bar in logs and pipes)."""
    if getattr(args, "command", None) != "score":
        return None
    return sys.stderr if args.progress or sys.stderr.isatty() else None
