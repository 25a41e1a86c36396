"""ffseg: face forgery detection and localization (Kong et al., TIFS 2022)."""

__version__ = "0.1.0"
