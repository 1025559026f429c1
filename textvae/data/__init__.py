"""textvae.data."""
