"""worker heartbeat and suspension power state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:11:58.998872
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.kit.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeat",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("running_operations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeat")),
    )
    with op.batch_alter_table("worker_heartbeat", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_worker_heartbeat_heartbeat_at"), ["heartbeat_at"], unique=False
        )

    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "suspension_powered_off", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.drop_column("suspension_powered_off")

    with op.batch_alter_table("worker_heartbeat", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeat_heartbeat_at"))

    op.drop_table("worker_heartbeat")
