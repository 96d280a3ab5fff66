"""active sampling: each group's batch plan and status

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "active_groups",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("session_type", sa.String(length=20), nullable=False),
        sa.Column("attribute", sa.String(length=80), nullable=False),
        sa.Column("scene", sa.String(length=120), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("n_answered", sa.Integer(), nullable=False),
        sa.Column("n_conditions", sa.Integer(), nullable=False),
        sa.Column("interval_width", sa.Float(), nullable=True),
        sa.Column("further_judgments", sa.Float(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prior_sd", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("campaign_id", "session_type", "attribute", "scene"),
    )
    op.create_table(
        "active_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("session_type", sa.String(length=20), nullable=False),
        sa.Column("attribute", sa.String(length=80), nullable=False),
        sa.Column("scene", sa.String(length=120), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("image_a_id", sa.Integer(), nullable=False),
        sa.Column("image_b_id", sa.Integer(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.ForeignKeyConstraint(["image_a_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["image_b_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["observer_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "seq"),
    )
    op.create_index(
        "ix_active_pairs_open",
        "active_pairs",
        ["campaign_id", "session_type", "attribute", "session_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_active_pairs_open", table_name="active_pairs")
    op.drop_table("active_pairs")
    op.drop_table("active_groups")
