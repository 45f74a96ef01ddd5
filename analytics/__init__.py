"""ClickHouse event store and the reports built on it (footfall, visitor origin)."""
