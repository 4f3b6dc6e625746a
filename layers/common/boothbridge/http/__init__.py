"""HTTP glue shared by the function apps: uniform errors, the per-process container, multipart reading."""
