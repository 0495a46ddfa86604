from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiClient


class ApiClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_key_hash(self, key_hash: str) -> ApiClient | None:
        result = await self.session.execute(select(ApiClient).where(ApiClient.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def get_by_name(self, name: str) -> ApiClient | None:
        result = await self.session.execute(select(ApiClient).where(ApiClient.name == name))
        return result.scalar_one_or_none()

    async def list_all(self) -> Sequence[ApiClient]:
        result = await self.session.execute(select(ApiClient).order_by(ApiClient.id))
        return result.scalars().all()

    async def add(self, client: ApiClient) -> ApiClient:
        self.session.add(client)
        await self.session.flush()
        return client
