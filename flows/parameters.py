"""Bounded parameter types shared by the stage flows (Prefect validates them and the UI renders them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modelops.spec import MODEL_NAME

ModelName = Annotated[str, Field(pattern=MODEL_NAME, description="Model name: configs/models/<name>.yaml")]
Version = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$", description="Registered version number")]
