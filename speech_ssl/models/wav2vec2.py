"""wav2vec 2.0 models: the backbone, the pretraining model and the CTC model.

    cfg = get_preset("tiny")
    model = Wav2Vec2ForPretraining(cfg)
    out = model(waveforms, lengths)          # waveforms (B, L) float32 16 kHz, lengths (B,) int64
    out.loss.backward(); print(out.logs)

Module names are our own; ``speech_ssl.interop.hf`` maps them to HF transformers keys and
``speech_ssl.interop.fairseq`` to fairseq keys.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.models.config import Wav2Vec2Config
from speech_ssl.models.context import TransformerEncoder
from speech_ssl.models.feature_encoder import ConvFeatureEncoder
from speech_ssl.models.masking import compute_channel_mask, compute_mask_indices, sample_negatives
from speech_ssl.models.quantizer import GumbelVectorQuantizer
from speech_ssl.precision import full_precision
from speech_ssl.transfer import to_device


class GradMultiply(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale`` (fairseq's GradMultiply)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


@dataclass
class Wav2Vec2Output:
    last_hidden_state: torch.Tensor  # (B, T, D) context network output (after the final LN in pre-LN)
    hidden_states: list[torch.Tensor]  # L+1 x (B, T, D); [0] = input of layer 1 (== HF hidden_states); [] when
    # forward(output_hidden_states=False) (the CTC model: inference then holds one layer's activations)
    extract_features: torch.Tensor  # (B, T, C) LayerNorm'ed conv features (quantizer input, before dropout)
    features_pen: torch.Tensor  # () mean of squared raw conv features (fp32)
    padding_mask: torch.Tensor | None  # (B, T) bool, True at padding; None when nothing is padded
    out_lengths: torch.Tensor  # (B,) int64 valid frames
    mask_indices: torch.Tensor | None  # (B, T) bool, True where mask_emb replaced the input
    host_lengths: torch.Tensor | None = None  # (B,) int64 valid frames, on the host (CPU)
    host_mask: torch.Tensor | None = None  # mask_indices on the host (CPU)


class Wav2Vec2Model(nn.Module):
    """Backbone: conv feature encoder -> LayerNorm -> projection -> (masking) -> Transformer.

    forward(waveforms (B, L), lengths (B,) | None, mask_indices (B, T) | None, apply_mask=None,
    generator=None, output_hidden_states=True) -> Wav2Vec2Output. ``apply_mask`` (default: ``self.training``)
    draws time masks (``mask_prob``) and channel masks (``mask_channel_prob``) when none are given; given
    ``mask_indices`` are always applied. ``output_hidden_states=False`` leaves ``hidden_states`` empty (the CTC
    model passes it: inference then holds one layer's activations instead of L + 1).

    Every decision that depends on lengths (input checks, padding, the number and place of masked spans) is made
    on the host: ``lengths`` are moved to the CPU (pass them there, as the trainer does, and the forward never
    waits for the accelerator), masks are drawn there (CPU random state, or ``generator``'s device) and copied
    to the model's device without blocking. On a CPU-only run this is the same computation as before.
    """

    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        # Per-utterance waveform normalisation the weights were trained with (zero mean, unit variance):
        # True / False from the checkpoint's record, None when unknown. Set by the loaders, saved with the model;
        # embed and decode apply it unless told otherwise.
        self.normalize_input: bool | None = None
        self.cfg = cfg
        D = cfg.encoder_embed_dim
        self.feature_encoder = ConvFeatureEncoder(cfg.conv_feature_layers, cfg.extractor_mode, cfg.conv_bias)
        C = self.feature_encoder.out_dim
        self.feature_norm = nn.LayerNorm(C, eps=cfg.layer_norm_eps)
        # Always present (fairseq has post_extract_proj only when C != D; every preset has C != D).
        self.feature_proj = nn.Linear(C, D)
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.mask_emb = nn.Parameter(torch.empty(D).uniform_())
        self.encoder = TransformerEncoder(
            D, cfg.encoder_ffn_embed_dim, cfg.encoder_layers, cfg.encoder_attention_heads, cfg.dropout,
            cfg.attention_dropout, cfg.activation_dropout, cfg.layer_norm_first, cfg.conv_pos,
            cfg.conv_pos_groups, cfg.encoder_layerdrop, cfg.required_seq_len_multiple, cfg.layer_norm_eps,
        )
        self.feature_grad_mult = cfg.feature_grad_mult

    # ------------------------------------------------------------------ helpers
    @property
    def receptive_field(self) -> int:
        return self.feature_encoder.receptive_field

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames for ``lengths`` samples. (B,) -> (B,) int64."""
        return self.feature_encoder.output_lengths(lengths)

    def freeze_feature_encoder(self) -> None:
        """No gradients into the conv encoder (runs under no_grad), as ``feature_grad_mult=0``."""
        self.feature_grad_mult = 0.0
        for p in self.feature_encoder.parameters():
            p.requires_grad_(False)

    def check_input(self, waveforms: torch.Tensor, lengths: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate (B, L) float waveforms and (B,) lengths; returns them (lengths filled in, int64, on the host)."""
        if not isinstance(waveforms, torch.Tensor):
            raise TypeError(f"waveforms must be a torch.Tensor (B, L), got {type(waveforms).__name__}")
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must have shape (batch, samples), got {tuple(waveforms.shape)}")
        if not waveforms.is_floating_point():
            raise TypeError(f"waveforms must be a float tensor (float32 in [-1, 1]), got dtype {waveforms.dtype}")
        B, L = waveforms.shape
        if B == 0:
            raise ValueError("empty batch: waveforms has 0 rows")
        rf = self.receptive_field
        if lengths is None:
            lengths = torch.full((B,), L, dtype=torch.int64)
        else:
            if not isinstance(lengths, torch.Tensor) or lengths.shape != (B,):
                shape = tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__
                raise ValueError(f"lengths must be a ({B},) tensor, got {shape}")
            if lengths.is_floating_point():
                raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
            lengths = lengths.to(device="cpu", dtype=torch.int64)  # a no-op for host lengths, else one sync
            if bool((lengths > L).any()):
                raise ValueError(f"lengths {lengths.tolist()} exceed the padded length {L}")
        short = lengths < rf
        if bool(short.any()):
            b = int(short.nonzero()[0, 0])
            raise ValueError(
                f"input {b} has {int(lengths[b])} samples, shorter than the receptive field of the conv "
                f"feature encoder ({rf} samples = {rf / SAMPLE_RATE * 1000:.0f} ms at 16 kHz)"
            )
        return waveforms, lengths

    def conv_features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Raw conv output (B, C, T) with ``feature_grad_mult`` applied (0 -> no_grad)."""
        w = waveforms.to(self.feature_encoder.blocks[0].conv.weight.dtype)
        if self.feature_grad_mult > 0:
            feats = self.feature_encoder(w)
            if self.feature_grad_mult != 1.0 and torch.is_grad_enabled():
                feats = GradMultiply.apply(feats, self.feature_grad_mult)
            return feats
        with torch.no_grad():
            return self.feature_encoder(w)

    def _apply_masks(self, x: torch.Tensor, padding_mask: torch.Tensor | None, mask_indices: torch.Tensor | None,
                     apply_mask: bool, generator: torch.Generator | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x (B, T, D) with masks applied, the time mask on x's device and on the host (or None, None).
        ``padding_mask`` (B, T) is the host copy; masks are drawn on the host and copied without blocking."""
        cfg = self.cfg
        B, T, D = x.shape
        host = torch.device("cpu")

        def channel(x: torch.Tensor) -> torch.Tensor:
            ch = compute_channel_mask(B, D, cfg.mask_channel_prob, cfg.mask_channel_length,
                                      cfg.mask_channel_selection, cfg.mask_channel_other,
                                      cfg.mask_channel_min_masks, generator, host)
            return x.masked_fill(to_device(ch, x.device)[:, None, :], 0.0)

        do_channel = apply_mask and cfg.mask_channel_prob > 0
        if do_channel and cfg.mask_channel_before:
            x = channel(x)
        host_mask = None
        if mask_indices is not None:
            if mask_indices.shape != (B, T):
                raise ValueError(f"mask_indices must have shape ({B}, {T}) (frames), got {tuple(mask_indices.shape)}")
            host_mask = mask_indices.to(device=host, dtype=torch.bool)  # given masks: one sync if on a device
            if padding_mask is not None and bool((host_mask & padding_mask).any()):
                raise ValueError("mask_indices marks padded frames as masked")
        elif apply_mask and cfg.mask_prob > 0:
            host_mask = compute_mask_indices(
                (B, T), padding_mask, cfg.mask_prob, cfg.mask_length, cfg.mask_selection, cfg.mask_other,
                cfg.min_masks, cfg.require_same_masks, cfg.mask_dropout, generator, host,
            )
        mask_indices = None
        if host_mask is not None:
            mask_indices = to_device(host_mask, x.device)
            x = torch.where(mask_indices.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        if do_channel and not cfg.mask_channel_before:
            x = channel(x)
        return x, mask_indices, host_mask

    # ------------------------------------------------------------------ forward
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None,
                mask_indices: torch.Tensor | None = None, apply_mask: bool | None = None,
                generator: torch.Generator | None = None, output_hidden_states: bool = True) -> Wav2Vec2Output:
        waveforms, lengths = self.check_input(waveforms, lengths)
        feats = self.conv_features(waveforms)  # (B, C, T)
        with full_precision(feats.device):
            features_pen = feats.float().pow(2).mean()
        feats = self.feature_norm(feats.transpose(1, 2))  # (B, T, C)
        B, T, _ = feats.shape
        host_lengths = self.output_lengths(lengths)  # (B,) on the host, like lengths
        host_pad = padding_mask = None
        if bool((host_lengths < T).any()):
            host_pad = torch.arange(T)[None, :] >= host_lengths[:, None]
            padding_mask = to_device(host_pad, feats.device)
        x = self.dropout_input(self.feature_proj(feats))
        if apply_mask is None:
            apply_mask = self.training
        x, mask_indices, host_mask = self._apply_masks(x, host_pad, mask_indices, apply_mask, generator)
        last, hidden = self.encoder(x, padding_mask, generator, keep_hidden=output_hidden_states)
        out_lengths = to_device(host_lengths, feats.device)
        return Wav2Vec2Output(last, hidden, feats, features_pen, padding_mask, out_lengths, mask_indices,
                              host_lengths, host_mask)


# ====================================================================== pretraining
@dataclass
class PretrainingOutput:
    loss: torch.Tensor  # () summed over masked frames, loss weights applied
    sample_size: int  # number of masked target frames
    logits: torch.Tensor  # (N, 1 + K) fp32, column 0 = positive
    mask_indices: torch.Tensor  # (B, T) bool
    negative_indices: torch.Tensor  # (B, T, K) flattened B*T indices (HF format); on the host when drawn here
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)  # () tensors (host numbers: counts)
    backbone: Wav2Vec2Output | None = None


class Wav2Vec2ForPretraining(nn.Module):
    """Backbone + Gumbel quantizer + contrastive head (fairseq Wav2Vec2Model with quantize_targets)."""

    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        # Per-utterance waveform normalisation the weights were trained with (zero mean, unit variance):
        # True / False from the checkpoint's record, None when unknown. Set by the loaders, saved with the model;
        # embed and decode apply it unless told otherwise.
        self.normalize_input: bool | None = None
        self.cfg = cfg
        self.wav2vec2 = Wav2Vec2Model(cfg)
        C = self.wav2vec2.feature_encoder.out_dim
        self.dropout_features = nn.Dropout(cfg.dropout_features)
        self.quantizer = GumbelVectorQuantizer(C, cfg.latent_vars, cfg.latent_groups, cfg.vq_dim, cfg.latent_temp)
        self.project_q = nn.Linear(cfg.vq_dim, cfg.final_dim)
        self.final_proj = nn.Linear(cfg.encoder_embed_dim, cfg.final_dim)
        self.num_updates = 0

    def set_num_updates(self, num_updates: int) -> None:
        """Sets the Gumbel temperature max(max_temp * decay**n, min_temp)."""
        self.num_updates = num_updates
        self.quantizer.set_num_updates(num_updates)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None,
                mask_indices: torch.Tensor | None = None, negative_indices: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> PretrainingOutput:
        cfg = self.cfg
        # 1. Context vectors c_t from masked latents (paper section 2; Fig. 1): the backbone encodes
        #    z = f(X), replaces masked frames by mask_emb and runs the Transformer g(z) -> c.
        out = self.wav2vec2(waveforms, lengths, mask_indices=mask_indices, apply_mask=True, generator=generator)
        mask, host_mask = out.mask_indices, out.host_mask  # (B, T) on the device, the same on the host
        if host_mask is None or not bool(host_mask.any()):
            raise ValueError("pretraining needs masked frames: mask_prob is 0 and no mask_indices were given")
        B, T = mask.shape
        dev = mask.device
        with full_precision(waveforms.device):
            # 2. Targets q_t: quantize the *unmasked* latents (section 2.2, eq. 1: Gumbel-softmax over
            #    G codebooks of V entries), then project to final_dim. Perplexities use masked frames only.
            y = self.dropout_features(out.extract_features.float())
            qout = self.quantizer(y, mask=mask, generator=generator)
            q = F.linear(qout.x, self.project_q.weight.float(), self.project_q.bias.float())  # (B, T, F)
            # 3. K distractors per target from the other masked frames of the same utterance (section 3.2).
            #    Drawn on the host from the host mask (the number of masked frames is a shape); only the masked
            #    frames' rows are copied, without blocking.
            host_bi, host_ti = host_mask.nonzero(as_tuple=True)
            N = host_bi.numel()
            bi, ti = to_device(host_bi, dev), to_device(host_ti, dev)
            if negative_indices is None:
                negative_indices = sample_negatives(host_mask, cfg.num_negatives, cfg.cross_sample_negatives,
                                                    generator)  # (B, T, K) on the host
                neg_rows = to_device(negative_indices[host_bi, host_ti], dev)  # (N, K)
            else:
                negative_indices = self._check_negatives(negative_indices, B, T)
                neg_rows = to_device(negative_indices, dev)[bi, ti]
            pos = q[bi, ti]  # (N, F)
            negs = q.reshape(B * T, -1)[neg_rows]  # (N, K, F)
            c = F.linear(out.last_hidden_state[bi, ti].float(), self.final_proj.weight.float(),
                         self.final_proj.bias.float())  # (N, F)
            # 4. Logits: cosine similarity sim(c_t, q) / kappa for q in {q_t} U Q_t (eq. 3); a distractor
            #    identical to its positive is masked with -inf.
            targets = torch.cat([pos.unsqueeze(1), negs], dim=1)  # (N, 1+K, F)
            logits = torch.cosine_similarity(c.unsqueeze(1), targets, dim=-1) / cfg.logit_temp
            neg_is_pos = (negs == pos.unsqueeze(1)).all(dim=-1)  # (N, K)
            logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(neg_is_pos, float("-inf"))], dim=1)
            # 5. Contrastive loss L_m = -log softmax(logits)[positive], summed over masked frames (eq. 3).
            target = torch.zeros(N, dtype=torch.long, device=logits.device)
            contrastive = F.cross_entropy(logits, target, reduction="sum")
            # 6. Diversity loss L_d = (GV - perplexity) / GV (eq. 4, fairseq's normalized form), weighted
            #    by alpha and scaled by sample_size like the summed contrastive term (L = L_m + alpha L_d).
            GV = cfg.latent_groups * cfg.latent_vars
            diversity = (GV - qout.prob_perplexity) / GV
            w_div, w_pen = cfg.loss_weights
            div_term = w_div * diversity * N
            # 7. Feature penalty: mean squared conv output (section 4.2), scaled by sample_size.
            pen_term = w_pen * out.features_pen * N
            loss = contrastive + div_term + pen_term
        with torch.no_grad():
            is_max = logits.argmax(dim=-1) == 0
            is_min = logits.argmin(dim=-1) == 0
            correct = (is_max & ~is_min).sum()  # guard against all-equal logits (fairseq)
        # Logs are device tensors (float64 where a sum or a ratio is made of them), never read on the host here:
        # the trainer sums them on the device and reads them when it logs.
        ln2 = math.log(2.0)
        n = float(N)
        loss_d, contrastive_d = loss.detach().double(), contrastive.detach().double()
        logs = {
            "loss": loss_d,
            "loss_bits": loss_d / n / ln2,
            "contrastive_loss": contrastive_d,
            "contrastive_bits": contrastive_d / n / ln2,
            "diversity_loss": diversity.detach().double(),
            "diversity_term": div_term.detach().double(),
            "features_pen": out.features_pen.detach().double(),
            "features_pen_term": pen_term.detach().double() if torch.is_tensor(pen_term) else float(pen_term),
            "accuracy": correct.double() / n,
            "correct": correct,
            "count": N,
            "prob_perplexity": qout.prob_perplexity.detach().double(),
            "code_perplexity": qout.code_perplexity.detach().double(),
            "temperature": float(qout.temp),
            "sample_size": N,
        }
        return PretrainingOutput(loss, N, logits, mask, negative_indices, logs, out)

    @staticmethod
    def _check_negatives(neg: torch.Tensor, B: int, T: int) -> torch.Tensor:
        if neg.dim() != 3 or neg.shape[:2] != (B, T):
            raise ValueError(f"negative_indices must have shape ({B}, {T}, K), got {tuple(neg.shape)}")
        neg = neg.long()
        if neg.numel() and (int(neg.min()) < 0 or int(neg.max()) >= B * T):
            raise ValueError(f"negative_indices must index the flattened {B}x{T} frames (0..{B * T - 1})")
        return neg


# ====================================================================== CTC
@dataclass
class CTCOutput:
    logits: torch.Tensor  # (B, T, V); padded frames forced to blank (0, others -inf)
    out_lengths: torch.Tensor  # (B,) int64
    loss: torch.Tensor | None = None  # () CTC loss summed over the batch, when labels were given
    log_probs: torch.Tensor | None = None  # (B, T, V) fp32 log-softmax of logits, when labels were given


class Wav2Vec2ForCTC(nn.Module):
    """Backbone + final dropout + Linear(D, V) (fairseq Wav2VecCtc). Blank = index 0 (fairseq's ``<s>``).

    ``freeze_finetune_updates``: while ``num_updates`` (``set_num_updates``) is below it, the backbone runs
    under no_grad and only the head trains (fairseq's Wav2VecEncoder).
    """

    def __init__(self, cfg: Wav2Vec2Config, vocab_size: int, vocab: list[str] | None = None,
                 freeze_finetune_updates: int = 0):
        super().__init__()
        # Per-utterance waveform normalisation the weights were trained with (zero mean, unit variance):
        # True / False from the checkpoint's record, None when unknown. Set by the loaders, saved with the model;
        # embed and decode apply it unless told otherwise.
        self.normalize_input: bool | None = None
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocab has {len(vocab)} symbols but vocab_size={vocab_size}")
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + symbols), got {vocab_size}")
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.vocab = list(vocab) if vocab is not None else None
        self.wav2vec2 = Wav2Vec2Model(cfg)
        self.final_dropout = nn.Dropout(cfg.final_dropout)
        self.head = nn.Linear(cfg.encoder_embed_dim, vocab_size)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.freeze_finetune_updates = freeze_finetune_updates
        self.num_updates = 0

    @classmethod
    def from_pretraining(cls, model: nn.Module, vocab_size: int, vocab: list[str] | None = None,
                         freeze_finetune_updates: int = 0, **overrides) -> "Wav2Vec2ForCTC":
        """A CTC model whose backbone starts from ``model``'s (a Wav2Vec2ForPretraining or Wav2Vec2Model).
        ``overrides`` change config fields (e.g. mask_prob=0.65, encoder_layerdrop=0.1, feature_grad_mult=0)."""
        backbone = model.wav2vec2 if hasattr(model, "wav2vec2") else model
        cfg = backbone.cfg.replace(**overrides)
        ctc = cls(cfg, vocab_size, vocab, freeze_finetune_updates)
        ctc.wav2vec2.load_state_dict(backbone.state_dict(), strict=True)
        ctc.to(next(backbone.parameters()).device)
        return ctc

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = num_updates

    def freeze_feature_encoder(self) -> None:
        self.wav2vec2.freeze_feature_encoder()

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, label_lengths: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> CTCOutput:
        """waveforms (B, L), lengths (B,) -> logits (B, T, V), out_lengths (B,); with ``labels (B, S)``
        (int64, padded with anything past ``label_lengths (B,)``) also the CTC loss and fp32 log-probs."""
        # 1. Backbone (under no_grad while the freeze lasts) and the output layer.
        frozen = self.training and self.num_updates < self.freeze_finetune_updates
        with torch.no_grad() if frozen else contextlib.nullcontext():
            out = self.wav2vec2(waveforms, lengths, generator=generator, output_hidden_states=False)
        x = self.head(self.final_dropout(out.last_hidden_state))
        # 2. Padded frames emit blank with probability 1, so they never change the alignment.
        if out.padding_mask is not None:
            blank = torch.full((self.vocab_size,), float("-inf"), dtype=x.dtype, device=x.device)
            blank[0] = 0.0
            x = torch.where(out.padding_mask.unsqueeze(-1), blank, x)
        if labels is None:
            return CTCOutput(x, out.out_lengths)
        if label_lengths is None:
            raise ValueError("labels need label_lengths (B,): the number of valid symbols per row")
        # 3. CTC loss (Graves et al. 2006, eq. 14: -ln p(labels | x) summed over the batch) on fp32
        #    log-probs, blank = 0; unreachable targets give 0 instead of inf (fairseq: zero_infinity=True).
        #    Padded (B, S) targets (ctc_loss reads row b up to label_lengths[b]) and host lengths: no gather of
        #    a data-dependent size and no device read (pass label_lengths on the host, as the trainer does).
        lprobs = x.float().log_softmax(-1)
        host_tlen = label_lengths.to(device="cpu", dtype=torch.int64)
        if labels.dim() != 2 or labels.shape[0] != host_tlen.shape[0] or bool((host_tlen > labels.shape[1]).any()):
            raise ValueError(f"labels must be (B, S) with label_lengths (B,) <= S, got {tuple(labels.shape)} and "
                             f"{host_tlen.tolist()}")
        with torch.backends.cudnn.flags(enabled=False):
            loss = F.ctc_loss(lprobs.transpose(0, 1), labels.to(lprobs.device), out.host_lengths, host_tlen, blank=0,
                              reduction="sum", zero_infinity=True)
        return CTCOutput(x, out.out_lengths, loss, lprobs)
