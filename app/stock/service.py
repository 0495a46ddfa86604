from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.errors import DCIManagerUnavailable
from app.stock.cache import StockCache
from app.stock.repository import reserved_by_configuration
from app.stock.schemas import ConfigurationStockOut, StockOut


async def current_stock(session: AsyncSession, *, cache: StockCache) -> StockOut:
    snapshot = await cache.snapshot()
    if snapshot is None:
        raise DCIManagerUnavailable("DCImanager has not answered yet; try again shortly.")
    reserved = await reserved_by_configuration(session)
    items = [
        ConfigurationStockOut(
            configuration=configuration,
            dcimanager_free=free,
            reserved=reserved.get(configuration, 0),
            available=max(free - reserved.get(configuration, 0), 0),
        )
        for configuration, free in sorted(snapshot.free.items())
    ]
    return StockOut(items=items, dcimanager_checked_at=snapshot.fetched_at)
