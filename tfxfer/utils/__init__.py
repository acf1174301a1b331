"""Small shared helpers: atomic file writes, hashing, argument checks."""
