"""textvae.batching."""
