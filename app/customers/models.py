from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.models import Base, BigIntPK, TimestampedMixin


class Customer(TimestampedMixin, Base):
    """A billing platform's customer, and the DCImanager user that stands for them."""

    __tablename__ = "customer"
    __table_args__ = (UniqueConstraint("api_client_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    dci_user_id: Mapped[int | None] = mapped_column(BigInteger)
