"""The index on disk: the SQLite store, its build, its search cache, notes and export."""
