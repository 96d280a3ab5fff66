"""login sessions, lockout, disabled users, campaign status and assignments, served trials,
answered counts, image provenance

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "login_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index("ix_login_sessions_user_id", "login_sessions", ["user_id"])
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=10), nullable=False, server_default="active")
        )
    op.create_table(
        "assignments",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("campaign_id", "user_id"),
    )
    op.create_index("ix_assignments_user_id", "assignments", ["user_id"])
    # Whoever already judged a campaign keeps access to it.
    op.execute(
        "INSERT INTO assignments (campaign_id, user_id)"
        " SELECT DISTINCT campaign_id, user_id FROM observer_sessions"
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("source_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("source_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("conversion", sa.Text(), nullable=True))
    op.execute("UPDATE images SET source_sha256 = sha256")  # stored as is until now
    with op.batch_alter_table("observer_sessions") as batch:
        batch.add_column(sa.Column("n_answered", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE observer_sessions SET n_answered = (SELECT COUNT(*) FROM trials"
        " WHERE trials.session_id = observer_sessions.id AND trials.answered_at IS NOT NULL)"
    )
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("served_at", sa.DateTime(timezone=True), nullable=True))
    # Trials planned before served_at existed may already be on a screen.
    op.execute("UPDATE trials SET served_at = planned_at")


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): batch mode would copy the tables, which SQLite
    # refuses while other tables' rows point at them.
    op.drop_column("trials", "served_at")
    op.drop_column("observer_sessions", "n_answered")
    for column in ("conversion", "source_sha256", "source_path"):
        op.drop_column("images", column)
    op.drop_index("ix_assignments_user_id", table_name="assignments")
    op.drop_table("assignments")
    op.drop_column("campaigns", "status")
    op.drop_index("ix_login_sessions_user_id", table_name="login_sessions")
    op.drop_table("login_sessions")
    for column in ("locked_until", "failed_logins", "disabled_at"):
        op.drop_column("users", column)
