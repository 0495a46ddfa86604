from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.kit.models import Base, BigIntPK, TimestampedMixin

if TYPE_CHECKING:
    from app.customers.models import Customer


def _str_enum(enum_cls: type[enum.StrEnum]) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable across SQLite and
    # PostgreSQL and easy to extend through a migration.
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class OrderStatus(enum.StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    FAILED = "failed"


class OperationKind(enum.StrEnum):
    PROVISION = "provision"
    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    TERMINATE = "terminate"
    REINSTALL = "reinstall"
    POWER = "power"


class OperationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    COMPENSATED = "compensated"


# Orders that hold their server; the unique index below and the server claim
# both go by this list.
LIVE_STATUSES = (OrderStatus.PROVISIONING, OrderStatus.ACTIVE, OrderStatus.SUSPENDED)
_LIVE_ORDER_SQL = (
    f"status IN ({', '.join(repr(status.value) for status in LIVE_STATUSES)}) "
    "AND dci_server_id IS NOT NULL"
)


class Order(TimestampedMixin, Base):
    """A billing service: one dedicated server for one customer."""

    __tablename__ = "order"
    __table_args__ = (
        UniqueConstraint("api_client_id", "external_id"),
        # The database itself refuses to let two live orders hold one server.
        Index(
            "uq_order_live_server",
            "dci_server_id",
            unique=True,
            sqlite_where=text(_LIVE_ORDER_SQL),
            postgresql_where=text(_LIVE_ORDER_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="RESTRICT"), index=True
    )
    configuration: Mapped[str] = mapped_column(String(255), index=True)
    os_template_id: Mapped[int] = mapped_column(BigInteger)
    ipv4_count: Mapped[int] = mapped_column(default=1)
    hostname: Mapped[str | None] = mapped_column(String(253))
    ssh_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[OrderStatus] = mapped_column(
        _str_enum(OrderStatus), default=OrderStatus.PROVISIONING, index=True
    )
    suspension_reason: Mapped[str | None] = mapped_column(String(32))
    # Set when a suspension also powered the server off, so lifting it powers it back on.
    suspension_powered_off: Mapped[bool] = mapped_column(default=False, server_default=false())
    dci_server_id: Mapped[int | None] = mapped_column(BigInteger)
    ip_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    failure_reason: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship(lazy="raise", viewonly=True)
    operations: Mapped[list[Operation]] = relationship(
        order_by="Operation.id", lazy="raise", viewonly=True
    )


class Operation(TimestampedMixin, Base):
    """One billing request against an order, carried out as ordered steps."""

    __tablename__ = "operation"
    __table_args__ = (
        Index("ix_operation_runnable", "status", "next_run_at"),
        Index("ix_operation_order_queue", "order_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"))
    kind: Mapped[OperationKind] = mapped_column(_str_enum(OperationKind))
    status: Mapped[OperationStatus] = mapped_column(
        _str_enum(OperationStatus), default=OperationStatus.QUEUED
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A customer's OS password, encrypted, kept only until the step that needs it is done.
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    next_run_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    steps: Mapped[list[OperationStep]] = relationship(
        order_by="OperationStep.position", lazy="raise", viewonly=True
    )


class OperationStep(TimestampedMixin, Base):
    """One DCImanager-facing step of an operation, with its own retry state."""

    __tablename__ = "operation_step"
    __table_args__ = (UniqueConstraint("operation_id", "position"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("operation.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[StepStatus] = mapped_column(_str_enum(StepStatus), default=StepStatus.PENDING)
    dci_task_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
