"""One text policy for both TTS families (audiokit/text/policy.py): the same inputs refused with the same
one-line message by VALL-E and Tortoise, and symbols dropped by one rule."""
import pytest

from audiokit.text.phonemes import TextError
from audiokit.text.policy import prepare_text

REFUSED = [
    ("", "empty"),
    ("   ", "empty"),
    ("😀😀", "nothing to pronounce (only emoji and symbols)"),
    ("...", "nothing to pronounce (no letters or digits)"),
    ("Привет, как дела?", "Cyrillic script (e.g. 'Привет,')"),
    ("こんにちは", "Hiragana script"),
    ("The word 漢字 is Chinese.", "Han (Chinese characters) script (e.g. '漢字')"),
    ("x" * 5000, "characters long; the limit is"),
]


@pytest.mark.parametrize("text,why", REFUSED)
def test_the_policy_refuses_with_one_line(text, why):
    with pytest.raises(TextError) as e:
        prepare_text(text, ["en"], max_chars=1000)
    assert why in str(e.value) and "\n" not in str(e.value)
    if "script" in why:
        assert "this model speaks en" in str(e.value)


def test_symbols_inside_english_are_dropped_and_numbers_spelled():
    assert prepare_text("I love it 😀 + so do you, for $5!", ["en"], 1000) == "I love it so do you, for five dollars!"
    assert prepare_text("Café déjà vu", ["en"], 1000) == "Café déjà vu"  # accented Latin letters are the model's script
    assert prepare_text("Привет", ["ru", "en"], 1000, language="ru") == "Привет"  # a model that speaks Russian
    with pytest.raises(TextError, match="this model speaks en; language 'de' is not one of them"):
        prepare_text("Hallo", ["en"], 1000, language="de")


@pytest.fixture(scope="module")
def both_families():
    import audiokit

    return audiokit.load("valle", asr=False), audiokit.load("tortoise")


@pytest.mark.parametrize("text", ["", "😀😀", "Привет, как дела?", "こんにちは", "x" * 5000])
def test_both_families_refuse_the_same_inputs_with_the_same_message(both_families, text):
    import torch

    valle, tortoise = both_families
    voice = torch.zeros(16000 * 2)
    with pytest.raises(TextError) as a:
        valle.synthesize(text, voice, prompt_text="hello", sample_rate=16000)
    with pytest.raises(TextError) as b:
        tortoise.synthesize(text, voice, sample_rate=16000)
    assert str(a.value).replace(str(valle.max_chars), "N") == str(b.value).replace(str(tortoise.max_chars), "N")
