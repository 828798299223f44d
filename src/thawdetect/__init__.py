"""thawdetect: iterative detection of permafrost slope failures from optical and InSAR data."""

__version__ = "0.1.0"
__all__ = ["__version__"]
