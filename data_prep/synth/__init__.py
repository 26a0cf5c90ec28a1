"""Embedded multilingual synthetic speech corpus (eSpeak NG) in the real corpora's layouts.

``speech-ssl prepare synth --out DIR --languages en,de,... --minutes-per-language M --seed S`` writes
English as LibriSpeech (+ a Libri-light style ``librispeech_finetuning/``), the other languages as
CommonVoice, and chosen languages also as BABEL conversations. Modules:

- ``espeak``: ctypes binding (synthesis with phone onsets, IPA phonemization; ``phonemize(text, lang)``)
- ``speakers``: stable synthetic speaker identities (voice variants), speaker-disjoint splits
- ``text``: per-language grammars and user text, word/letter label normalization
- ``acoustics``: loudness, silences, noise at an SNR, room reverberation, resampling
- ``corpus``: planning, parallel synthesis, the layouts; ``cli``: the command-line front end
"""
