"""lowres: pretraining language models for low-resource languages in JAX."""

__version__ = "0.1.0"
