"""wav2vec 2.0 model components, models, presets and checkpoints."""

from speech_ssl.models.config import PRESETS, Wav2Vec2Config, get_preset, preset_names
from speech_ssl.models.wav2vec2 import (
    CTCOutput,
    PretrainingOutput,
    Wav2Vec2ForCTC,
    Wav2Vec2ForPretraining,
    Wav2Vec2Model,
    Wav2Vec2Output,
)

__all__ = [
    "PRESETS", "Wav2Vec2Config", "get_preset", "preset_names", "CTCOutput", "PretrainingOutput",
    "Wav2Vec2ForCTC", "Wav2Vec2ForPretraining", "Wav2Vec2Model", "Wav2Vec2Output",
]
