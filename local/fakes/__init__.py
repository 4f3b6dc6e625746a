"""Provider fakes as real HTTP servers (Gemini, Turbotext): the demo mode's providers and the tests'."""
