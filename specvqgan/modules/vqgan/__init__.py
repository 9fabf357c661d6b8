"""Spectrogram VQGAN modules (pure nn.Modules): encoder/decoder blocks and the vector quantizer."""
from specvqgan.modules.vqgan.encoder_decoder import Decoder, Decoder1d, Encoder, Encoder1d
from specvqgan.modules.vqgan.quantize import VectorQuantizer, VectorQuantizer1d

__all__ = ["Encoder", "Decoder", "Encoder1d", "Decoder1d", "VectorQuantizer", "VectorQuantizer1d"]
