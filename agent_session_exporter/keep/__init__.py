"""Keeping: the store protocol, the in-memory store, the SQLite store and the totals' JSON form."""
