"""SQLAlchemy models and queries shared by api, stacks and scheduler."""
