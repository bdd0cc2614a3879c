"""The database: declarative base and column types, engines, the unit of work, migrations,
keyset pagination and JSON encoding for JSON columns."""
