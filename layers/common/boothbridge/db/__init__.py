"""Database: SQLAlchemy models, the async engine, and the embedded PostgreSQL used when none is configured."""
