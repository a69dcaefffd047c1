"""SQLAlchemy models and queries shared by api, stacks and scheduler.

base            DeclarativeBase, UTC timestamp type, utcnow()
models          every table (users ... idempotency_keys)
db              make_engine(url), session_factory(engine, immediate=False), migrate(url)
accounts        users, teams, team membership
keys            API key rows (prefix + hash)
login_sessions  browser sessions
billing         billing events, deployment counts for tier limits
operations      the operation queue (owned by the operation runner)
drift           the last drift check per deployment, and the drift schedule's memory
metrics         CPU and memory samples over time (written by the scheduler's sampler)
migrations/     Alembic; `alembic.ini` at the repository root
"""
