"""Dashboard users, their sessions, failed logins and the audit trail of their actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.models import Base, BigIntPK, TimestampedMixin, utcnow


class AdminUser(TimestampedMixin, Base):
    """A person who may sign in to /admin (created with `dcibridge admin create-user`)."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # argon2id encoded hash (parameters and salt included), never the password.
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]


class AdminSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is kept,
    so a copy of this table cannot be replayed as a session."""

    __tablename__ = "admin_session"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin_user_id: Mapped[int] = mapped_column(
        ForeignKey("admin_user.id", ondelete="CASCADE"), index=True
    )
    # Per-session CSRF token, echoed in every form of this session's pages.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    client_ip: Mapped[str | None] = mapped_column(String(64))


class AdminLoginFailure(Base):
    """One failed sign-in, counted by the login rate limit (kept for its window only)."""

    __tablename__ = "admin_login_failure"
    __table_args__ = (
        Index("ix_admin_login_failure_username_at", "username", "at"),
        Index("ix_admin_login_failure_client_ip_at", "client_ip", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Who did what to which object, written in the transaction of the action itself."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The username is copied, not only referenced: the trail must outlive the account.
    actor: Mapped[str] = mapped_column(String(64))
    admin_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_user.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    # Lets the order page list every action on the order and its operations and callbacks.
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("order.id", ondelete="SET NULL"), index=True
    )
    client_ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
