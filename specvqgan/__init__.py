"""specvqgan: visually guided sound generation (Iashin & Rahtu, BMVC 2021), re-implemented."""

__version__ = "0.1.0"
