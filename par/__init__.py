"""PAR: searching which Transformer-XL blocks need attention (Mandava et al. 2020)."""

__version__ = "0.1.0"
