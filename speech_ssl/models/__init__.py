"""wav2vec 2.0 model components, models, presets and checkpoints.

    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    model = Wav2Vec2ForPretraining(get_preset("tiny"))
    out = model(waveforms, lengths)        # (B, L) float32 16 kHz, (B,) int64
    out.loss.backward(); out.logs          # contrastive/diversity/features_pen, accuracy, perplexities, temp

Semantics follow fairseq (``fairseq/models/wav2vec/wav2vec2.py``, ``wav2vec_criterion.py``,
``wav2vec2_asr.py``); the HF transformers parity tests (``tests/interop/test_hf.py``) check outputs to
1e-4. Deliberate differences from fairseq:

- ``feature_proj`` (fairseq ``post_extract_proj``) always exists; fairseq omits it when the conv dim equals
  the model dim (no preset does; the fairseq reader fills an identity).
- The quantizer runs on every frame (HF style) and the loss picks the masked ones; fairseq quantizes only
  the masked frames. Same values and perplexities (computed over masked frames); the Gumbel noise stream
  differs.
- Random draws use torch generators (optional ``generator`` argument) instead of numpy's global RNG: the
  same distributions, a different stream. ``no_mask_overlap`` / ``mask_min_space`` (fairseq's sequential
  interval splitting) are rejected by the config; overlapping spans (the default) are exact.
- An utterance with a single masked frame has no distractor: its negatives point at itself and are masked
  with -inf (fairseq crashes in ``randint(0, 0)``).
- LayerDrop skips a layer as fairseq does but keeps its parameters in the graph with
  ``0 * sum(first element of each parameter)`` (zero gradients), so DDP needs no
  ``find_unused_parameters``; ranks may skip different layers.
- ``hidden_states[N]`` follows HF transformers 5.x: N = 0 is the input of layer 1, N = L the output of the
  last layer *before* the final LayerNorm of pre-LN models (fairseq's ``layer_results``);
  ``last_hidden_state`` is after it.
- Gumbel, cosine-similarity and loss math run in fp32 with autocast disabled (fairseq casts the Gumbel
  input and cosine similarity to float; we also keep ``logits`` fp32).
- ``tiny`` is our CPU preset (not in fairseq); ``xlsr_53`` / ``xls_r_*`` dropouts follow the released HF
  configs (0.1), not verified against fairseq's training yaml.

Differences from HF transformers: HF has no ``feature_grad_mult``, feature penalty, cross-sample negatives
or sequence padding to a multiple of 2 (which does not change results); in eval mode HF's diversity loss
uses the hard-code perplexity, ours (like fairseq) always the soft ``prob_perplexity``.
"""

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
