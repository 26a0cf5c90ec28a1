"""CTC fine-tuning (fairseq ``audio_finetuning`` + ``ctc`` criterion) as a task of the one Trainer.

    cfg = load_task_config("ctc", "recipes/synth/conf/finetune.yaml", ["optim.max_update=200"])
    task = CTCTask(cfg, source="recipes/synth/conf/finetune.yaml")

What it does, with fairseq's semantics:
- the model: ``finetune.pretrained`` (one of our checkpoints: a pretraining model, a bare backbone or a
  CTC model to continue from; HF/fairseq checkpoints after ``speech-ssl convert``) or, when empty, a
  fresh ``model.preset``; a new ``Linear(D, V)`` head over the dictionary that starts at the frame-level
  unit prior of the training labels (zero weights, bias = log prior; :meth:`CTCTask.init_head`);
  the backbone config overridden by fairseq's ``Wav2Vec2AsrConfig`` defaults
  (:data:`~speech_ssl.train.config.FINETUNE_MODEL_DEFAULTS`) and then ``model.overrides``;
- the conv feature encoder frozen throughout (``feature_grad_mult=0``, run under no_grad); the whole
  backbone frozen (no_grad, only the head trains) for the first ``freeze_finetune_updates`` updates;
- the model's CTC loss (``Wav2Vec2ForCTC.forward(..., labels=...)``: ``F.ctc_loss(reduction="sum",
  zero_infinity=True)`` on fp32 log-probs, blank = 0 (``<s>``)),
  ``sample_size`` = sentences (fairseq's ``sentence_avg: true``), logged in bits like fairseq;
- validation: the same loss plus greedy decoding -> ``wer`` (on words for letter/sentencepiece units, on
  phones for phone units, where it is the PER) and ``uer`` (unit error rate); best checkpoint by ``wer``;
- at start: every label symbol must be in the dictionary (DataError naming label file and line), the
  blank must be ``<s>`` at 0 and never appear in labels, a continued CTC model must have the same
  vocabulary; utterances whose labels cannot fit their frames under CTC are counted and reported;
- monitoring: ``blank_frac`` (fraction of frames whose argmax is blank) in every train/valid line and an
  ``all_blank`` alarm when it stays >= ``all_blank_threshold`` after the freeze has ended
  (+ ``all_blank_grace_updates``).

Differences from fairseq: the new head starts at the unit prior instead of xavier weights and bias 0
(``finetune.head_bias_init=zero finetune.head_weight_init=xavier`` restores fairseq's start; fairseq's and
HF's start leaves CTC stuck at the label prior in many low-resource runs: recipes/synth/README.md,
"Fine-tuning that does not get stuck"); labels are checked strictly instead of mapped to ``<unk>``; rows longer than
``data.max_sample_size`` are dropped instead of cropped (cropping would cut audio away from its
transcript); validation WER uses jiwer (same edit distance as fairseq's ``editdistance``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import torch
from torch import nn

from speech_ssl.config import ConfigError
from speech_ssl.data.datasets import FinetuneDataset
from speech_ssl.data.units import Dictionary, infer_unit, tokens_to_text
from speech_ssl.decode.ctc import greedy_ctc
from speech_ssl.errors import DataError
from speech_ssl.models.checkpoint import load_model, read_checkpoint_config, save_model
from speech_ssl.models.feature_encoder import conv_output_length
from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC
from speech_ssl.train.config import FINETUNE_MODEL_DEFAULTS, FinetuneConfig
from speech_ssl.train.monitor import Alarm, AlarmChecker
from speech_ssl.train.task import (
    LN2,
    StepOutput,
    Task,
    check_sample_sizes,
    load_checkpoint_weights,
    model_config,
)

logger = logging.getLogger(__name__)


def frame_mutual_information(posterior_sums: list[float], entropy_bits_sum: float, frames: float) -> tuple[float, float]:
    """(I(frame; output) in bits, the same as a fraction of H(output)) for frames drawn uniformly:
    I = H(mean posterior) - mean H(posterior).

    0 when every frame gets the same distribution (the output does not depend on the input); up to
    H(mean posterior) (fraction 1) when each frame's posterior is one-hot.
    """
    p = torch.tensor(posterior_sums, dtype=torch.float64) / max(frames, 1.0)
    p = p / p.sum().clamp_min(1e-300)
    h_marginal = float(-(p * p.clamp_min(1e-300).log2()).sum())
    mi = max(h_marginal - entropy_bits_sum / max(frames, 1.0), 0.0)
    return mi, mi / h_marginal if h_marginal > 0 else 0.0


BLANK_FREE_FRACTION = 0.05  # blank wins fewer frames than this: "blank-free" (healthy CTC: ~1 - labels/frames)
STUCK_ADVICE = (
    "Likely causes: a new head whose blank starts low (finetune.head_bias_init=prior avoids it), too few "
    "updates or too low an lr, labels that do not match the audio, normalize not matching pretraining, "
    "time masking too strong for the data. Try: finetune.head_bias_init=prior (or init_blank_prob=0.9), "
    "more updates or a higher lr, mask_prob 0 at this scale, and check a few transcripts by ear."
)


class CTCAlarmChecker(AlarmChecker):
    """The trainer's alarms plus CTC's failure modes after the freeze ended (+ a grace period):
    ``all_blank`` (outputs all blank), ``blank_free`` (blank wins almost no frame: CTC sits on a repeat-only
    alignment at the label prior) and ``stuck_at_prior`` (validation outputs barely depend on the input:
    frame/output mutual information below ``stuck_mi_frac`` for ``stuck_validations`` validations)."""

    def __init__(self, freeze_end: int, threshold: float, grace: int, stuck_mi_frac: float = 0.46,
                 stuck_validations: int = 2, blank_free_updates: int = 200, **kw):
        super().__init__(**kw)
        self.freeze_end = freeze_end
        self.threshold = threshold
        self.grace = grace
        self.stuck_mi_frac = stuck_mi_frac
        self.stuck_validations = stuck_validations
        self.blank_free_updates = blank_free_updates
        self._blank_active = False
        self._blank_free_since: int | None = None
        self._blank_free_active = False
        self._low_mi: list[float] = []
        self._stuck_active = False

    def check_valid(self, num_updates: int, metrics: dict[str, float]) -> list[Alarm]:
        mi = metrics.get("frame_mi_frac")
        if mi is None or num_updates < self.freeze_end + self.grace:
            return []
        self._low_mi = self._low_mi + [mi] if mi < self.stuck_mi_frac else []
        holds = len(self._low_mi) >= self.stuck_validations
        alarms = []
        if holds and not self._stuck_active:
            err = metrics.get("per", metrics.get("wer"))
            alarms.append(Alarm(
                "stuck_at_prior",
                f"the outputs barely depend on the input at update {num_updates}: the frames explain "
                f"{100 * mi:.0f}% of the output entropy (< {100 * self.stuck_mi_frac:g}% for {len(self._low_mi)} "
                "validations), "
                f"blank on {100 * metrics.get('blank_frac', float('nan')):.1f}% of frames"
                + (f", error rate {err:.1f}%" if err is not None else "")
                + ": CTC is stuck at the label prior. " + STUCK_ADVICE,
            ))
        self._stuck_active = holds
        return alarms

    def _check_blank_free(self, num_updates: int, frac: float | None) -> list[Alarm]:
        if frac is None or num_updates < self.freeze_end or frac >= BLANK_FREE_FRACTION:
            self._blank_free_since = None
            self._blank_free_active = False
            return []
        if self._blank_free_since is None:
            self._blank_free_since = num_updates
        long = num_updates - self._blank_free_since >= self.blank_free_updates
        if long and num_updates >= self.freeze_end + self.grace and not self._blank_free_active:
            self._blank_free_active = True
            return [Alarm(
                "blank_free",
                f"blank has won under {100 * BLANK_FREE_FRACTION:g}% of the frames since update {self._blank_free_since} "
                f"(now {num_updates}): CTC sits "
                "on an alignment that repeats labels instead of emitting blanks, which usually means it is "
                "stuck at the label prior. " + STUCK_ADVICE,
            )]
        return []

    def check(self, num_updates: int, metrics: dict[str, float]) -> list[Alarm]:
        alarms = super().check(num_updates, metrics)
        frac = metrics.get("blank_frac")
        alarms += self._check_blank_free(num_updates, frac)
        holds = (
            frac is not None and num_updates >= self.freeze_end + self.grace and frac >= self.threshold
        )
        if holds and not self._blank_active:
            alarms.append(Alarm(
                "all_blank",
                f"{100 * frac:.2f}% of frames are blank at update {num_updates}, {num_updates - self.freeze_end} "
                "updates after the encoder was unfrozen: the model outputs nothing. Advice: train longer "
                "(CTC models emit only blanks for a while), raise the lr, check that the labels match the "
                "audio and the dictionary, and that frames outnumber label symbols.",
            ))
        self._blank_active = holds
        return alarms


class CTCTask(Task):
    """CTC fine-tuning; see the module docstring."""

    name = "ctc"
    best_metric = "wer"
    maximize_best = False

    def __init__(self, cfg: FinetuneConfig, source: str | None = None):
        super().__init__(cfg, source)
        self.ft = cfg.finetune
        self.dictionary = self._load_dictionary()
        self.symbols = list(self.dictionary.symbols)
        self.unit = self.ft.unit or infer_unit(self.symbols)
        self.model_cfg = None
        self._frames: dict[str, Any] = {}  # manifest -> (N,) CTC frames per utterance (after _check_labels)

    # -- dictionary and checks ------------------------------------------------------------------------
    def _load_dictionary(self):
        path = self.ft.dictionary
        if path is None:
            first = Path(self.cfg.data.train[0])
            if not first.is_file():  # the dictionary is looked for beside it: name the manifest, not the dictionary
                raise DataError("manifest not found (data.train; the dictionary dict."
                                f"{self.ft.labels}.txt is looked for beside it)", first)
            path = str(first.parent / f"dict.{self.ft.labels}.txt")
        d = Dictionary.load(path)
        if d.symbols[d.blank_index] != "<s>" or d.blank_index != 0:
            raise DataError(f"the CTC blank must be <s> at index 0, got {d.symbols[0]!r}", path)
        if len(d) < 5:
            raise DataError("the dictionary has no symbols besides the specials", path)
        self.dictionary_path = path
        return d

    def _label_path(self, manifest: str) -> Path:
        return Path(manifest).with_suffix("." + self.ft.labels)

    # -- model ----------------------------------------------------------------------------------------
    def backbone_config(self, base=None):
        """The backbone's config: ``base`` (the pretrained model's; default ``model.preset``), then
        fairseq's fine-tuning defaults (:data:`FINETUNE_MODEL_DEFAULTS`), then ``model.overrides``."""
        return model_config(self.cfg, self.source, base, FINETUNE_MODEL_DEFAULTS)

    def build_model(self) -> nn.Module:
        ft = self.ft
        new_head = True
        V = len(self.symbols)
        if ft.pretrained:
            extra = read_checkpoint_config(ft.pretrained).get("extra") or {}
            if "normalize" in extra and bool(extra["normalize"]) != self.cfg.data.normalize:
                raise ConfigError(
                    f"{self.source or 'config'}: key 'data.normalize' is {self.cfg.data.normalize} but "
                    f"{ft.pretrained} was trained with normalize={bool(extra['normalize'])}; they must match "
                    "(fairseq asserts this too)"
                )
            if "normalize" not in extra:
                logger.info("%s does not record 'normalize'; make sure data.normalize=%s matches its pretraining",
                            ft.pretrained, self.cfg.data.normalize)
            src = load_model(ft.pretrained)
            same_vocab = isinstance(src, Wav2Vec2ForCTC) and (
                list(src.vocab) == self.symbols if src.vocab is not None else src.vocab_size == V
            )
            if isinstance(src, Wav2Vec2ForCTC) and not same_vocab and not ft.new_head:
                raise DataError(
                    f"the checkpoint's CTC vocabulary ({src.vocab_size} symbols, starting "
                    f"{(src.vocab or [])[:6]}) differs from {self.dictionary_path} ({V} symbols, starting "
                    f"{self.symbols[:6]}); set finetune.new_head=true to train a new head on its encoder",
                    ft.pretrained,
                )
            backbone = src.wav2vec2 if hasattr(src, "wav2vec2") else src
            model = Wav2Vec2ForCTC(self.backbone_config(backbone.cfg), V, self.symbols, ft.freeze_finetune_updates)
            if isinstance(src, Wav2Vec2ForCTC) and not ft.new_head:
                model.load_state_dict(src.state_dict(), strict=True)
                new_head = False
            else:
                if isinstance(src, Wav2Vec2ForCTC):
                    logger.warning("%s: dropping its CTC head (finetune.new_head), new %d-symbol head", ft.pretrained, V)
                model.wav2vec2.load_state_dict(backbone.state_dict(), strict=True)
            del src, backbone
        else:
            model = Wav2Vec2ForCTC(self.backbone_config(), V, self.symbols, ft.freeze_finetune_updates)
        if ft.reinit_layers:
            if not ft.pretrained:
                raise ConfigError(f"{self.source or 'config'}: finetune.reinit_layers needs finetune.pretrained")
            try:
                model.wav2vec2.encoder.reinit_top_layers(ft.reinit_layers)
            except ValueError as e:
                raise ConfigError(f"{self.source or 'config'}: finetune.reinit_layers: {e}") from None
            logger.info("re-initialised the top %d Transformer layers of %s", ft.reinit_layers, ft.pretrained)
        if model.cfg.feature_grad_mult == 0:
            model.freeze_feature_encoder()
        self.model_cfg = model.cfg
        check_sample_sizes(self.cfg, model.cfg, self.source)
        if new_head:
            self.init_head(model)
        return model

    def unit_prior(self) -> torch.Tensor:
        """(V,) the frame-level unit distribution of an alignment that gives every label of the training
        data one frame and blank the other frames: blank ``1 - U/F`` (U labels, F frames; or
        ``finetune.init_blank_prob``), each label symbol ``U/F`` x its share of the labels (add-0.5
        smoothed, so symbols that never occur, the specials included, keep a small mass)."""
        V = len(self.symbols)
        targets = [t for ds in self.datasets("train") for t in ds.targets]
        ids = np.concatenate(targets).astype(np.int64) if targets else np.zeros(0, dtype=np.int64)
        counts = torch.from_numpy(np.bincount(ids, minlength=V)[:V]).double()
        labels = float(counts.sum())
        frames = float(sum(int(self._frames[m].sum()) for m in self.cfg.data.train))
        blank = self.dictionary.blank_index
        p_blank = self.ft.init_blank_prob
        if p_blank is None:
            p_blank = min(max(1.0 - labels / max(frames, 1.0), 0.05), 0.95)
        share = counts + 0.5
        share[blank] = 0.0
        share = share / share.sum()
        prior = (1.0 - p_blank) * share
        prior[blank] = p_blank
        return prior.float()

    def init_head(self, model: nn.Module) -> None:
        """A new head's start (``finetune.head_bias_init`` / ``head_weight_init``).

        Why: pretrained features barely vary over frames at first, so a fresh head puts nearly the same
        distribution on every frame and its random weights decide where blank ranks. When blank starts
        low, CTC's alignment posterior avoids blank paths (each blank frame costs its log-probability),
        the gradient keeps blank low, and a language whose labels rarely repeat (phones) can stay on a
        blank-free alignment at the label prior for good (recipes/synth/README.md, "Stuck at the prior").
        With the bias at the log of :meth:`unit_prior` and zero weights, every frame starts at the
        distribution the alignment statistics of the data give (the same idea as RetinaNet's prior
        initialisation of a classifier's bias), whatever the seed; with xavier weights the random term
        (~1.3 nats over classes here) still sank blank in 2 of 10 ky letter runs.
        """
        ft = self.ft
        head = model.head
        with torch.no_grad():
            if ft.head_weight_init == "zero":
                head.weight.zero_()
            elif ft.head_weight_init == "hf":
                head.weight.normal_(0.0, 0.02)
            if ft.head_bias_init == "prior":
                prior = self.unit_prior()
                head.bias.copy_(prior.log().to(head.bias))
                logger.info(
                    "new CTC head: bias = log frame-level unit prior (blank %.3f, %s weights)",
                    float(prior[self.dictionary.blank_index]), ft.head_weight_init,
                )
            else:
                head.bias.zero_()

    def _extra(self) -> dict:
        return {
            "unit": self.unit,
            "normalize": self.cfg.data.normalize,
            "labels": self.ft.labels,
            "task": "ctc",
        }

    def save_weights(self, model: nn.Module, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """``model.safetensors`` + ``config.json`` (with vocab, unit, normalize in ``extra``) + ``dict.txt``."""
        if state_dict is not None:  # a gathered (FSDP) state: an unsharded copy on CPU
            model = Wav2Vec2ForCTC(model.cfg, model.vocab_size, model.vocab, model.freeze_finetune_updates)
            model.load_state_dict(state_dict, strict=True)
        save_model(model, folder, extra=self._extra())
        self.dictionary.save(Path(folder) / "dict.txt")

    def load_weights(self, model: nn.Module, folder: Path, strict: bool = True) -> None:
        load_checkpoint_weights(model, folder, strict, "the CTC model", "finetune.pretrained and the dictionary")

    def ddp_find_unused_parameters(self) -> bool:
        # The frozen-backbone phase runs the backbone under no_grad; mask_emb is unused without masking.
        return self.ft.freeze_finetune_updates > 0 or (self.model_cfg or self.backbone_config()).mask_prob == 0

    # -- data -----------------------------------------------------------------------------------------
    def build_dataset(self, manifest: str) -> FinetuneDataset:
        d = self.cfg.data
        ds = FinetuneDataset(
            manifest, self._label_path(manifest), self.dictionary, d.min_sample_size, d.max_sample_size,
            d.normalize, seed=self.cfg.seed, skip_empty_labels=self.ft.skip_empty_labels,
        )
        self._check_labels(ds, manifest)
        return ds

    def _check_labels(self, ds, manifest: str) -> None:
        """Blank never a label; count utterances whose labels cannot fit their frames under CTC."""
        for i, t in enumerate(ds.targets):
            if len(t) and bool((t == self.dictionary.blank_index).any()):
                row = int(ds.rows[i])
                raise DataError(
                    "label uses <s>, which is the CTC blank", ds.label_path, row + 1
                )
            if len(t) and bool((t == self.dictionary.pad_index).any()):
                raise DataError("label uses <pad>", ds.label_path, int(ds.rows[i]) + 1)
        layers = self.model_cfg.conv_feature_layers if self.model_cfg is not None else None
        if layers is None:
            if self.ft.pretrained:
                layers = read_checkpoint_config(self.ft.pretrained)["model"]["conv_feature_layers"]
            else:
                layers = model_config(self.cfg, self.source).conv_feature_layers
        frames = conv_output_length(np.asarray(ds.raw_sizes, dtype=np.int64), layers)
        self._frames[manifest] = frames
        # CTC needs a frame per label plus one between repeated labels.
        need = np.array([len(t) + int((t[1:] == t[:-1]).sum()) if len(t) else 0 for t in ds.targets])
        bad = np.flatnonzero(need > frames)
        self.num_infeasible = getattr(self, "num_infeasible", 0) + len(bad)
        if len(bad):
            r = int(ds.rows[bad[0]])
            logger.warning(
                "%s: %d of %d utterances have more label symbols than frames and give no CTC gradient "
                "(zero_infinity), e.g. %s:%d (%d symbols, %d frames)",
                manifest, len(bad), len(ds), ds.label_path, r + 1, need[bad[0]], frames[bad[0]],
            )

    def describe_batch(self) -> str:
        c = self.model_cfg
        if c is None:
            return f"CTC over {len(self.symbols)} {self.unit} symbols"
        return (
            f"CTC over {len(self.symbols)} {self.unit} symbols, mask {c.mask_prob}x{c.mask_length}, channel mask "
            f"{c.mask_channel_prob}x{c.mask_channel_length}, layerdrop {c.encoder_layerdrop}, "
            f"freeze {self.ft.freeze_finetune_updates} updates"
        )

    # -- steps ----------------------------------------------------------------------------------------
    def _forward_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        """The model's CTC loss plus what monitoring needs: (loss, log-probs (B, T, V) fp32, out_lengths,
        summable logs, posteriors (B, T, V) zeroed at padding)."""
        out = model(batch["source"], batch["lengths"], labels=batch["target"], label_lengths=batch["target_lengths"])
        lprobs, out_lengths = out.log_probs, out.out_lengths
        frames = torch.arange(lprobs.shape[1], device=lprobs.device)[None, :] < out_lengths[:, None]
        with torch.no_grad():
            blank_frames = ((lprobs.argmax(-1) == self.dictionary.blank_index) & frames).sum()
            probs = lprobs.exp() * frames[..., None]
            entropy = -(probs * lprobs.clamp_min(-1e4)).sum() / LN2  # bits, summed over valid frames
        logs = {
            "ntokens": batch["target_lengths"].sum(),
            "nsentences": float(batch["target"].shape[0]),
            "frames": frames.sum(),
            "blank_frames": blank_frames,
            "entropy_bits": entropy,
        }
        return out.loss, lprobs, out_lengths, logs, probs

    def lr_scale(self, param_name: str) -> float:
        return self.ft.head_lr_scale if param_name.startswith("head.") else 1.0

    def grad_norm_group(self, param_name: str) -> str | None:
        return "head" if param_name.startswith("head.") else "body"

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], num_updates: int) -> StepOutput:
        loss, _, _, logs, _ = self._forward_loss(model, batch)
        return StepOutput(loss, float(batch["target"].shape[0]), logs)

    def valid_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        loss, lprobs, out_lengths, logs, probs = self._forward_loss(model, batch)
        # Summed posteriors per symbol: with the summed entropy they give the mutual information between
        # frames and outputs (reduce_metrics), ~0 when the model says the same thing on every frame.
        for k, v in enumerate(probs.sum((0, 1)).tolist()):
            logs[f"post.{k}"] = v
        hyps_tok = greedy_ctc(lprobs, out_lengths, self.dictionary.blank_index)
        tgt, tlen = batch["target"].cpu(), batch["target_lengths"].cpu().tolist()
        refs_tok = [tgt[i, : tlen[i]].tolist() for i in range(len(tlen))]
        # Unit error rate over output symbols (fairseq's "uer"), word (or phone) error rate over text.
        unit_r = [" ".join(map(str, r)) or "" for r in refs_tok]
        unit_h = [" ".join(map(str, h)) or "" for h in hyps_tok]
        text_unit = "phone" if self.unit == "phone" else self.unit
        word_r = [tokens_to_text(r, self.symbols, text_unit) for r in refs_tok]
        word_h = [tokens_to_text(h, self.symbols, text_unit) for h in hyps_tok]
        u = jiwer.process_words(unit_r, unit_h)
        w = jiwer.process_words(word_r, word_h)
        logs.update(
            unit_errors=float(u.substitutions + u.deletions + u.insertions),
            unit_total=float(sum(len(r) for r in refs_tok)),
            word_errors=float(w.substitutions + w.deletions + w.insertions),
            word_total=float(sum(len(r.split()) for r in word_r)),
        )
        return StepOutput(loss, float(tgt.shape[0]), logs)

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        ss = sums.get("sample_size", 0.0) or 1.0
        m: dict[str, float] = {"loss": sums.get("loss", 0.0) / ss / LN2}
        if sums.get("ntokens"):
            m["nll_loss"] = sums.get("loss", 0.0) / sums["ntokens"] / LN2
        if sums.get("frames"):
            m["blank_frac"] = sums.get("blank_frames", 0.0) / sums["frames"]
            if "entropy_bits" in sums:
                m["entropy"] = sums["entropy_bits"] / sums["frames"]
            post = [sums.get(f"post.{k}", 0.0) for k in range(len(self.symbols))]
            if "entropy_bits" in sums and any(post):
                m["frame_mi"], m["frame_mi_frac"] = frame_mutual_information(post, sums["entropy_bits"], sums["frames"])
        if "word_total" in sums:
            m["wer"] = 100.0 * sums.get("word_errors", 0.0) / max(sums["word_total"], 1.0)
            m["uer"] = 100.0 * sums.get("unit_errors", 0.0) / max(sums.get("unit_total", 0.0), 1.0)
            if self.unit == "phone":
                m["per"] = m["wer"]
        m["sample_size"] = sums.get("sample_size", 0.0)
        return m

    def alarm_checker(self, warmup_end: int) -> AlarmChecker:
        return CTCAlarmChecker(
            freeze_end=self.ft.freeze_finetune_updates,
            threshold=self.ft.all_blank_threshold,
            grace=self.ft.all_blank_grace_updates,
            stuck_mi_frac=self.ft.stuck_mi_frac,
            stuck_validations=self.ft.stuck_validations,
            blank_free_updates=self.ft.blank_free_updates,
            warmup_end=warmup_end,
        )
