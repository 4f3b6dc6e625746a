"""The image rules: inspecting an upload, and the one boundary every provider's input and output crosses."""
