"""Embedded multilingual synthetic speech corpus (eSpeak NG) in the real corpora's layouts.

    speech-ssl prepare synth --out data/synth [--languages en,de,fr,es,it,nl,pt,ru,sv,tr,et,fi]
        [--minutes-per-language 2] [--english-minutes M] [--seed 0] [--speakers-per-language 40]
        [--babel-languages tr --babel-minutes 2] [--librilight-scale 0.005] [--augment-prob 0.3]
        [--text-dir DIR] [--workers N] [--overwrite]

Writes under ``--out`` (see ``corpus`` for the details):

- ``LibriSpeech/{train-clean-100,dev-clean,test-clean}/SPK/CHAP/SPK-CHAP-UUUU.flac`` + ``.trans.txt``,
  ``SPEAKERS.TXT``, ``CHAPTERS.TXT`` (English, 16 kHz FLAC);
- ``librispeech_finetuning/{1h/{0..5},9h}/{clean,other}/...`` (English, durations = real × scale);
- ``cv-corpus-1.0-synth/LANG/clips/*.mp3`` + ``train/dev/test/validated/invalidated/other.tsv``,
  ``clip_durations.tsv`` (other languages, 48 kHz MP3, CommonVoice 17 columns);
- ``IARPA-babel<code>b-v0.5/conversational/{training,dev}/{audio/*.sph,transcription/*.txt}`` (8 kHz
  SPHERE calls, telephone band + 8-bit mu-law, with ``[seconds]`` lines; Turkish = code 105);
- ``labels/<layout>[-LANG]/<subset>.tsv``: ``id path lang speaker start end words letters phones
  phone_onsets word_onsets augment style channel`` per utterance (per turn for BABEL; times in seconds in
  the file; the last three are the acoustic draws: noise/reverb, speaking style, codec/channel);
- ``lm_text/LANG.txt``: sentences of the language that no split reads, for honest language models;
- ``synth_info.json``: arguments, speakers (voice parameters), minutes per subset.

Train/dev/test are speaker- and sentence-disjoint, and LM text shares no sentence with them; the same
arguments give byte-identical files. Sentences are natural text (``sentences/LANG.txt``, from
LibreOffice's translated help, MPL-2.0; ``textsrc`` makes them) or the user's (``--text-dir``).
Modules: ``espeak`` (ctypes binding; ``phonemize(text, lang)`` for other preparers), ``speakers``,
``text`` (sentences, normalization), ``textsrc``, ``acoustics``, ``corpus`` (planning, workers, layouts), ``cli``.
eSpeak NG is GPL-3.0+, loaded at run time from the ``espeakng-loader`` wheel (or a system library).
"""
