from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ConfigurationStockOut(BaseModel):
    configuration: str = Field(examples=["i9-9900K-64Gb-2x1024NVMe"])
    available: int = Field(description="What billing may sell now: free minus reserved.")
    dcimanager_free: int = Field(description="DCImanager's own free count.")
    reserved: int = Field(description="Taken by orders still provisioning.")


class StockOut(BaseModel):
    items: list[ConfigurationStockOut]
    dcimanager_checked_at: datetime = Field(
        description="When DCImanager was last asked (answers are cached for a few seconds)."
    )
