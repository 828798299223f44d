"""Example thawdetect plugin: ΔNDVI vegetation-loss detector."""

__version__ = "0.1.0"
