"""Slots: an operator's 40 pipelines. `rules`: what a configuration must meet (pure); `service`: listing, saving and
resetting them."""
