"""Persistence: SQLAlchemy models, engine setup, named queries and the unit of work."""
