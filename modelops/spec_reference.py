"""The life cycle spec published for people and editors: its JSON Schema and a reference page, both generated
from the pydantic models in modelops/spec.py (the one place fields are described)."""

from __future__ import annotations

import json
import types
import typing
from enum import Enum
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from modelops.spec import LifecycleSpec

SCHEMA_FILE = "lifecycle-spec.schema.json"
REFERENCE_FILE = "docs/spec-reference.md"
_CONSTRAINTS = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}", "min_length": "min length {}",
                "pattern": "matches `{}`"}


def json_schema() -> str:
    """The spec's JSON Schema (draft 2020-12) as committed text; editors validate YAML against it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **LifecycleSpec.model_json_schema()}
    schema["description"] = ("The life cycle of one model: configs/models/<name>.yaml. "
                             "Reference: docs/spec-reference.md")
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: `int`, `list[str]`, `"batch" | "incremental"`, `Bound` …"""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " \\| ".join(json.dumps(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join(type_name(arg) for arg in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(json.dumps(member.value) for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attribute, template in _CONSTRAINTS.items():
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(template.format(value))
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(section defaults)"
    return f"`{json.dumps(value, default=lambda v: v.value if isinstance(v, Enum) else str(v))}`"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _sections(model: type[BaseModel], path: str, seen: set[type[BaseModel]]) -> list[str]:
    """A table for `model` at `path`, then one section per nested model, depth first, each model once."""
    seen.add(model)
    doc = (model.__doc__ or "").strip() if model is not LifecycleSpec else ""
    lines = [f"## {model.__name__}", "", f"At `{path}`." if path else "The top level of a spec file.", ""]
    if doc:
        lines += [_cell(doc), ""]
    lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        kind = type_name(field.annotation)
        limits = _constraints(field)
        lines.append(f"| `{name}` | {kind}{f' ({limits})' if limits else ''} | {_default(field)} | "
                     f"{_cell(field.description or '')} |")
        for inner in _models_in(field.annotation):
            is_map = typing.get_origin(field.annotation) is dict
            nested.append((inner, f"{path + '.' if path else ''}{name}{'.<key>' if is_map else ''}"))
    lines.append("")
    for inner, inner_path in nested:
        if inner not in seen:
            lines += _sections(inner, inner_path, seen)
    return lines


def reference_markdown() -> str:
    """docs/spec-reference.md: every field of the spec with its type, default and description, section by
    section."""
    head = ["# Life cycle spec reference", "",
            "Generated from `modelops/spec.py` by `modelops deployments --write`; do not edit by hand "
            "(a test compares). One file per model: `configs/models/<name>.yaml`, validated on load. Editors "
            f"validate as you type against `configs/{SCHEMA_FILE}` (first line of a spec: "
            f"`# yaml-language-server: $schema=../{SCHEMA_FILE}`). `modelops check` goes further: it loads a "
            "sample through the loader and checks columns, metric names, the cron and per-model flows.", ""]
    return "\n".join(head + _sections(LifecycleSpec, "", set())).rstrip("\n") + "\n"
