"""Text front ends: normalization, espeak-ng phonemes with a fixed vocabulary, BPE tokenizers."""
from .bpe import BPETokenizer
from .normalize import int_to_words, normalize_for_wer, normalize_text, ordinal_to_words, year_to_words
from .phonemes import PHONEME_VOCAB, Phonemizer, PhonemeVocab, TextError, supported_languages

__all__ = [
    "BPETokenizer",
    "PHONEME_VOCAB",
    "PhonemeVocab",
    "Phonemizer",
    "TextError",
    "int_to_words",
    "normalize_for_wer",
    "normalize_text",
    "ordinal_to_words",
    "supported_languages",
    "year_to_words",
]
