"""cgm: reference implementation of CGM-Net (ECCV 2020), the Context Guided Motion Network."""

__version__ = "0.1.0"
