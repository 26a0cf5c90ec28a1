"""eSpeak NG binding: synthesis, phone events, IPA phonemization, voice variants (data_prep.synth.espeak)."""

import jiwer
import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from data_prep.synth.acoustics import estimate_f0  # noqa: E402
from data_prep.synth.corpus import DEFAULT_LANGUAGES  # noqa: E402
from data_prep.synth.espeak import ESPEAK_RATE, clean_phone, get_engine, merge_modifiers, phonemize  # noqa: E402
from data_prep.synth.speakers import make_speakers, split_speakers  # noqa: E402
from data_prep.synth.text import shipped_sentences  # noqa: E402

STRESS = set("ˈˌ_")


def test_clean_phone_and_modifiers():
    assert clean_phone("ˈaɪ") == "aɪ"
    assert clean_phone("ˌt͡ʃ") == "tʃ"
    assert clean_phone("d[") == "d\u032a"
    assert merge_modifiers(["r", "ʲ", "a", "ː"], [0, 5, 9, 12]) == (["rʲ", "aː"], [0, 9])


def test_synthesize_returns_audio_and_ordered_phone_onsets():
    eng = get_engine()
    res = eng.synthesize("The old man buys twenty red cars.", "en-US", rate=170, seed=1)
    assert res.samples.dtype == np.int16 and ESPEAK_RATE == 22050
    assert 1.0 < res.duration < 4.0
    assert np.abs(res.samples.astype(np.float64)).max() > 3000
    assert len(res.phones) >= 20 and all(p and not set(p) & STRESS for p in res.phones)
    assert res.phone_starts == sorted(res.phone_starts) and res.phone_starts[-1] < len(res.samples)
    assert len(res.word_starts) >= 6


@pytest.mark.parametrize("lang", DEFAULT_LANGUAGES)
def test_phonemize_matches_synthesis_labels(lang):
    """IPA from TextToPhonemes equals the phone events of the synthesis in the same voice (10 real sentences;
    Portuguese differs in a phone now and then)."""
    from data_prep.synth.espeak import ESPEAK_VOICES

    spoken, ours = [], []
    for text in shipped_sentences(lang)[:10]:
        phones = phonemize(text, lang)
        assert len(phones) >= 5  # three words at least
        assert all(p and not set(p) & STRESS and not any(c in "[];#<>/%=" for c in p) for p in phones), phones
        ours.append(" ".join(phones))
        spoken.append(" ".join(get_engine().synthesize(text, ESPEAK_VOICES[lang], rate=170, seed=0).phones))
    assert sum(a == b for a, b in zip(spoken, ours)) >= 8 and jiwer.wer(spoken, ours) < 0.01


def test_same_seed_same_samples_and_speakers_differ():
    eng = get_engine()
    spk = make_speakers("en", 24, 0)
    assert len({s.variant_text() for s in spk}) == 24
    assert make_speakers("en", 24, 0) == spk and make_speakers("en", 24, 1) != spk
    assert len({s.sid for s in spk}) == 24
    text = "Every friday my brother carries a heavy bag."
    f0 = {}
    for s in spk[:6]:
        eng.write_variant(s.variant_name, s.variant_text())
        res = eng.synthesize(text, "en-US", s.variant_name, rate=s.rate, seed=3)
        f0[s.index] = estimate_f0(res.samples.astype(np.float32), ESPEAK_RATE)
    male = [f0[i] for i in range(0, 6, 2)]
    female = [f0[i] for i in range(1, 6, 2)]
    assert max(male) < min(female), f0
    # the measured F0 follows the variant's base pitch
    bases = [spk[i].pitch_base for i in range(6)]
    assert np.corrcoef(bases, [f0[i] for i in range(6)])[0, 1] > 0.8, (bases, f0)


def test_split_speakers_disjoint():
    spk = make_speakers("de", 24, 0)
    parts = split_speakers(spk, 4, 4)
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [16, 4, 4]
    ids = [{s.sid for s in parts[k]} for k in ("train", "dev", "test")]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert {s.gender for s in parts["dev"]} == {"m", "f"}
    with pytest.raises(ValueError):
        split_speakers(spk[:5], 3, 3)


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ValueError, match="no voice"):
        phonemize("hello", "xx-nonexistent")
