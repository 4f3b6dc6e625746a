"""The ingest function: `POST /ingest/{slot_id}` for DSLR Remote Pro and Breeze Booth."""
