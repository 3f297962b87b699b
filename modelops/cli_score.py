"""The score command's options: where the batch comes from, the chunk size, and the progress bar off a terminal."""

from __future__ import annotations

from typing import Any

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
                    "help": "draw a progress bar on stderr even when it is not a terminal (as a line of text), and with --json"}),
)

