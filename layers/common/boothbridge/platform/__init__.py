"""Running the service: health and metrics, cleanup, provisioning, the Lambda loop, the AWS session."""
