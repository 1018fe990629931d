"""tsslc: TSSL-BP training, a graph IR, and verified deployment of spiking networks."""

__version__ = "0.1.0"
