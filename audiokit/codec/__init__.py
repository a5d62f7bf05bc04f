"""The codec: audio ↔ CodecTokens (EnCodec/DAC-style RVQGAN)."""
from .bitstream import BitstreamError, read_akc, write_akc
from .codec import Codec, CodecLoadError
from .convert import ConversionError, convert_dac, convert_encodec
from .model import CodecModel

__all__ = ["BitstreamError", "Codec", "CodecLoadError", "CodecModel", "ConversionError", "convert_dac", "convert_encodec",
           "read_akc", "write_akc"]
