"""The booth use case: the ingest service, its data types, and the processing-log row."""
