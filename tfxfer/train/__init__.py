"""The one training core: a cached-feature head step, an unfreezing step, and `fine_tune` composing them."""
