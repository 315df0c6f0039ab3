"""One JSON schema file per stream (package so SchemaDirectory can find it)."""
