"""``speech-ssl demo``: the miniature wav2vec 2.0 / XLSR experiment (see :mod:`speech_ssl.demo.run`)."""
