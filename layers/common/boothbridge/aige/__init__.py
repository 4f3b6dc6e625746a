"""AIGE's API (seeds 000/001) on the task engine: its request bodies (`models`) and each endpoint as a task
(`mapping`). Pure: no FastAPI, no I/O."""
