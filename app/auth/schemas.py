from __future__ import annotations

from pydantic import BaseModel, Field


class WhoAmI(BaseModel):
    name: str = Field(examples=["billing"])
    scopes: list[str] = Field(examples=[["orders:read", "orders:write"]])
