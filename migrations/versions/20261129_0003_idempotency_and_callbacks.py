"""idempotency keys and callback outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 15:40:33.767489
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.kit.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "in_progress",
                "completed",
                name="idempotencystatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("locked_at", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_key")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_idempotency_key_scope_key")),
    )
    with op.batch_alter_table("idempotency_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_key_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "callback_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column(
            "api_client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "delivered",
                "failed",
                name="callbackstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.kit.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deliver_until", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", app.kit.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", app.kit.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            app.kit.models.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            app.kit.models.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["api_client_id"],
            ["api_client.id"],
            name=op.f("fk_callback_event_api_client_id_api_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_callback_event_order_id_order"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_event")),
        sa.UniqueConstraint("message_id", name=op.f("uq_callback_event_message_id")),
    )
    with op.batch_alter_table("callback_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_event_api_client_id"), ["api_client_id"], unique=False
        )
        batch_op.create_index("ix_callback_event_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_event_order_id"), ["order_id"], unique=False)

    op.create_table(
        "callback_attempt",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempted_at", app.kit.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["callback_event.id"],
            name=op.f("fk_callback_attempt_event_id_callback_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempt")),
    )
    with op.batch_alter_table("callback_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_attempt_event_id"), ["event_id"], unique=False
        )

    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_url", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("callback_secret_ciphertext", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.drop_column("callback_secret_ciphertext")
        batch_op.drop_column("callback_url")

    with op.batch_alter_table("callback_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_attempt_event_id"))

    op.drop_table("callback_attempt")
    with op.batch_alter_table("callback_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_event_order_id"))
        batch_op.drop_index("ix_callback_event_due")
        batch_op.drop_index(batch_op.f("ix_callback_event_api_client_id"))

    op.drop_table("callback_event")
    with op.batch_alter_table("idempotency_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_key_expires_at"))

    op.drop_table("idempotency_key")
