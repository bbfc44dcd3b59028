"""Asukasbotti: the Espoo residents' civic assistant (platform-neutral core)."""

__version__ = "0.1.0"
