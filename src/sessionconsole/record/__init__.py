"""Session record: append-only, hash-chained SQLite store."""
