"""Media storage: the ObjectStore protocol, its backends, and the media_object repository."""
