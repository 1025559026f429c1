"""textvae.model."""
