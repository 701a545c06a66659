"""Sweeps: many `lowres train` runs from one YAML spec, trained locally or handed to a scheduler,
resumable and never trained twice at once, with one results table and plots over all of them."""
