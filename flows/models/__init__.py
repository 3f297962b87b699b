"""Per-model flows: one module per model, named in its spec's `flows:` section (see docs/per-model-flows.md)."""
