"""Alembic environment.

The database URL comes from, in order: a connection handed over by
`persistence.db.migrate()`, `alembic -x url=...`, `sqlalchemy.url` in the config,
and finally the service settings (`SHIPSTACK_DATABASE_URL` or the SQLite default).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from persistence.base import Base
from persistence.db import check_sqlite_foreign_keys, make_engine, normalize_url, sqlite_foreign_keys_off

# Import for side effects: registers every table on Base.metadata for autogenerate and check.
from persistence import drift, metrics, models, scheduler_tables  # noqa: F401  # isort: skip

config = context.config
target_metadata = Base.metadata

# The alembic CLI logs per alembic.ini; `migrate()` (no ini file) leaves the
# service's logging alone.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    x_url = context.get_x_argument(as_dictionary=True).get("url")
    if x_url:
        return x_url
    ini_url = config.get_main_option("sqlalchemy.url")
    if ini_url:
        return ini_url
    # Imported lazily: only the alembic CLI path needs the service settings.
    from stacks.settings import Settings

    return Settings.from_env().service.database_url


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=True,
        compare_type=True,
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=normalize_url(_url()), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                with sqlite_foreign_keys_off(conn):
                    _configure(connection=conn)
                    with context.begin_transaction():
                        context.run_migrations()
                        check_sqlite_foreign_keys(conn)
                return
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
