"""The deployable functions: thin facades over the common layer. They never import each other."""
