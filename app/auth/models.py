from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.models import Base, BigIntPK, TimestampedMixin


class ApiClient(TimestampedMixin, Base):
    """A billing platform (or other caller) holding one API key."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The first characters of the key, shown in listings so operators can tell keys apart.
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Where billing wants signed event callbacks, and the Standard Webhooks secret
    # (encrypted: it must be readable to sign with it).
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    callback_secret_ciphertext: Mapped[str | None] = mapped_column(Text)

    def as_caller(self) -> Caller:
        return Caller(id=self.id, name=self.name, scopes=tuple(self.scopes))


@dataclass(frozen=True, slots=True)
class Caller:
    """The API client behind an accepted key: what a request needs to know of it."""

    id: int
    name: str
    scopes: tuple[str, ...]
