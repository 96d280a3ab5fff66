"""pair counts kept incrementally; training trials per session

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pair_counts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=80), nullable=False),
        sa.Column("image_a_id", sa.Integer(), nullable=False),
        sa.Column("image_b_id", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("left_a", sa.Integer(), nullable=False),
        sa.Column("left_b", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.ForeignKeyConstraint(["image_a_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["image_b_id"], ["images.id"]),
        sa.PrimaryKeyConstraint("campaign_id", "attribute", "image_a_id", "image_b_id"),
    )
    op.execute(
        "INSERT INTO pair_counts"
        " (campaign_id, attribute, image_a_id, image_b_id, planned, left_a, left_b)"
        " SELECT campaign_id, attribute, image_a_id, image_b_id, COUNT(*),"
        " SUM(CASE WHEN left_shown = 'A' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN left_shown = 'B' THEN 1 ELSE 0 END)"
        " FROM trials WHERE kind IN ('normal', 'repeat')"
        " GROUP BY campaign_id, attribute, image_a_id, image_b_id"
    )
    with op.batch_alter_table("observer_sessions") as batch:
        batch.add_column(sa.Column("n_training", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE observer_sessions SET n_training = (SELECT COUNT(*) FROM trials"
        " WHERE trials.session_id = observer_sessions.id AND trials.kind = 'training')"
    )
    op.create_index("ix_trials_user_campaign", "trials", ["user_id", "campaign_id", "attribute"])


def downgrade() -> None:
    op.drop_index("ix_trials_user_campaign", table_name="trials")
    with op.batch_alter_table("observer_sessions") as batch:
        batch.drop_column("n_training")
    op.drop_table("pair_counts")
