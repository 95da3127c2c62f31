"""Built-in training objectives: cross-entropy, an L2 weight penalty and weighted sums."""
