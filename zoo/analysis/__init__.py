"""Analysis: latent spaces, latent samplers, sample metrics and plots."""
