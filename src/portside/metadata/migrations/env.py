"""Alembic environment: migrations run programmatically from `portside.metadata.database.upgrade`."""

from alembic import context
from sqlalchemy import create_engine

from portside.metadata.schema import metadata

config = context.config


def run() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
