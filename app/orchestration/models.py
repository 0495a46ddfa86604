from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.models import Base


class WorkerHeartbeat(Base):
    """A live worker process; readiness and the dashboard read its heartbeat."""

    __tablename__ = "worker_heartbeat"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)
    running_operations: Mapped[int] = mapped_column(default=0)
