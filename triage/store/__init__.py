"""The relational database: pre-consultation summaries, staff audit log (and, with the
editor, the knowledge base). SQLAlchemy, SQLite by default, any SQL server in production."""
