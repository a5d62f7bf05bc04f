"""Whisper-style speech recognition: model, tokenizer, decoding, long-form transcription, training."""
from .decoding import DecodingOptions, DecodingResult, decode, decode_with_fallback, detect_language
from .model import ASRModel, ModelDimensions
from .tokenizer import WhisperTokenizer
from .transcribe import Segment, Transcript, transcribe
from .transcriber import Transcriber

__all__ = ["ASRModel", "DecodingOptions", "DecodingResult", "ModelDimensions", "Segment", "Transcriber", "Transcript",
           "WhisperTokenizer", "decode", "decode_with_fallback", "detect_language", "transcribe"]
