from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiClient, Caller

_clients = ApiClient.__table__.c
# Checked on every API request: a plain row, not an ORM object, is all it needs.
_CALLER_BY_KEY_HASH = select(_clients.id, _clients.name, _clients.scopes).where(
    _clients.key_hash == bindparam("key_hash"), _clients.enabled == true()
)


class ApiClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enabled_caller(self, key_hash: str) -> Caller | None:
        row = (await self.session.execute(_CALLER_BY_KEY_HASH, {"key_hash": key_hash})).first()
        if row is None:
            return None
        return Caller(id=row.id, name=row.name, scopes=tuple(row.scopes))

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
