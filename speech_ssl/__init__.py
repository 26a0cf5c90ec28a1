"""speech_ssl: self-supervised speech (wav2vec 2.0 / XLSR) pretraining, CTC fine-tuning and decoding."""

__version__ = "0.1.0"
