"""Slots: an operator's 40 pipelines. `pipeline`: a slot's steps, finishing and variants, the API body in both
shapes and the job pipeline snapshot (pure); `guest`: variant choice and prompt placeholders (pure); `rules`: what
a configuration must meet (pure); `service`: listing, saving and resetting them."""
