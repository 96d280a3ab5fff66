"""Alembic environment: runs on the connection that ``db.upgrade`` hands in."""

from alembic import context

from annotation_app.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
