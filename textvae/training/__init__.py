"""textvae.training."""
