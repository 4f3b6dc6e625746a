"""Machine-client tasks (issue 15; SPEC §11): jobs not tied to a booth slot, their inputs, outputs, AIGE-style
status and delivery to a caller's pre-signed writeUrl."""
