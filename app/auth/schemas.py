from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WhoAmI(BaseModel):
    name: str = Field(examples=["billing"])
    scopes: list[str] = Field(examples=[["orders:read", "orders:write"]])


class Ping(BaseModel):
    status: Literal["ok"] = "ok"
    api_client: str
    dci_mode: Literal["dcimanager", "simulator"]
    dcimanager_latency_ms: float
