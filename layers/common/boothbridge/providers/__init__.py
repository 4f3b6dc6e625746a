"""Provider adapters, one module per AI service, all behind the `Provider` protocol in `base`."""
