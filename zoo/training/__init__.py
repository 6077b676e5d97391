"""Training: the engine's epoch loop, its step runners, callbacks and optimizers."""
