"""CTC fine-tuning: label checks, loss/metrics, and a tiny model overfitting a handful of utterances."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.config import ConfigError
from speech_ssl.errors import DataError
from speech_ssl.train.ctc_task import CTCAlarmChecker, CTCTask
from speech_ssl.train.tasks import load_task_config

LETTERS = "ABCDE"
FREQS = {c: f for c, f in zip(LETTERS, [300.0, 700.0, 1200.0, 2000.0, 3100.0])}
TEXTS = ["AB CD", "EAD", "BE AC", "DC BA", "CAB E", "ED"]


def _render(text: str, rng: np.random.Generator) -> np.ndarray:
    """'Speech' where every letter is a 0.1 s tone of its own frequency and a space is 0.08 s of silence."""
    sr = 16000
    parts = [np.zeros(1600, dtype=np.float32)]
    for ch in text:
        if ch == " ":
            parts.append(np.zeros(1280, dtype=np.float32))
            continue
        t = np.arange(1600) / sr
        tone = 0.5 * np.sin(2 * np.pi * FREQS[ch] * t + rng.uniform(0, 6.28)) * np.hanning(1600)
        parts.append(tone.astype(np.float32))
        parts.append(np.zeros(320, dtype=np.float32))
    parts.append(np.zeros(1600, dtype=np.float32))
    x = np.concatenate(parts)
    return (x + 0.01 * rng.standard_normal(len(x))).astype(np.float32)


def make_corpus(root, texts=TEXTS, name="train"):
    rng = np.random.default_rng(0)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows, ltr, wrd = [], [], []
    for i, t in enumerate(texts):
        x = _render(t, rng)
        fn = f"{name}-{i:03d}.wav"
        sf.write(audio / fn, x, 16000)
        rows.append(f"{fn}\t{len(x)}")
        ltr.append(" ".join(t.replace(" ", "|")) + " |")
        wrd.append(t)
    (root / f"{name}.tsv").write_text(str(audio) + "\n" + "\n".join(rows) + "\n")
    (root / f"{name}.ltr").write_text("\n".join(ltr) + "\n")
    (root / f"{name}.wrd").write_text("\n".join(wrd) + "\n")
    (root / "dict.ltr.txt").write_text("".join(f"{s} 10\n" for s in ["|", *LETTERS]))
    return root / f"{name}.tsv"


def write_config(root, pretrained="", extra=""):
    man = root / "train.tsv"
    cfg = root / "ft.yaml"
    cfg.write_text(
        f"""
task: ctc
seed: 1
device: cpu
model:
  preset: tiny
  overrides:
    mask_prob: 0.05
    mask_length: 2
    mask_channel_prob: 0.1
    mask_channel_length: 4
    encoder_layerdrop: 0.0
data:
  train: [{man}]
  valid: [{man}]
  max_tokens: 400000
optim:
  lr: 0.002
  max_update: 160
schedule:
  name: tri_stage
  phase_ratio: [0.1, 0.4, 0.5]
checkpoint:
  save_interval_updates: 0
logging:
  log_interval: 40
  valid_interval_updates: 80
  progress_bar: false
  tensorboard: false
finetune:
  pretrained: "{pretrained}"
  labels: ltr
  freeze_finetune_updates: 10
{extra}"""
    )
    return cfg


def _pretrained(root):
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining

    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), root / "pt")
    return root / "pt"


def test_config_defaults_follow_fairseq(tmp_path):
    make_corpus(tmp_path)
    cfg = load_task_config("ctc", write_config(tmp_path))
    assert cfg.schedule.name == "tri_stage" and cfg.optim.eps == 1e-8
    task = CTCTask(cfg, "ft.yaml")
    backbone = task.backbone_config()
    assert backbone.feature_grad_mult == 0.0 and backbone.dropout == 0.0 and backbone.mask_length == 2
    with pytest.raises(ConfigError, match="finetune.bogus"):
        load_task_config("ctc", write_config(tmp_path), ["finetune.bogus=1"])
    # the backbone's settings are model overrides (validated against the model config), not finetune keys
    with pytest.raises(ConfigError, match="model.overrides.mask_prob"):
        load_task_config("ctc", write_config(tmp_path), ["finetune.mask_prob=0.3"])
    with pytest.raises(ConfigError, match="model.overrides.mask_prb"):
        CTCTask(load_task_config("ctc", write_config(tmp_path), ["model.overrides.mask_prb=0.3"])).backbone_config()


def test_label_symbol_not_in_dictionary_names_file_and_line(tmp_path):
    make_corpus(tmp_path)
    lines = (tmp_path / "train.ltr").read_text().splitlines()
    lines[2] = "A X |"
    (tmp_path / "train.ltr").write_text("\n".join(lines) + "\n")
    task = CTCTask(load_task_config("ctc", write_config(tmp_path)), "ft.yaml")
    with pytest.raises(DataError, match=r"train.ltr:3: .*'X'"):  # the new head's prior reads the labels at build time
        task.build_model()
        task.split("train", 1, 0, 1)


def test_blank_used_as_label_is_rejected(tmp_path):
    make_corpus(tmp_path)
    lines = (tmp_path / "train.ltr").read_text().splitlines()
    lines[1] = "A <s> |"
    (tmp_path / "train.ltr").write_text("\n".join(lines) + "\n")
    task = CTCTask(load_task_config("ctc", write_config(tmp_path)), "ft.yaml")
    with pytest.raises(DataError, match=r"train.ltr:2: .*blank"):  # the new head's prior reads the labels at build time
        task.build_model()
        task.split("train", 1, 0, 1)


def test_ctc_loss_matches_per_utterance_reference(tmp_path):
    """Batched, padded loss == sum of unpadded per-utterance CTC losses; conv encoder frozen."""
    make_corpus(tmp_path)
    task = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=_pretrained(tmp_path))), "ft.yaml")
    model = task.build_model().eval()
    assert all(not p.requires_grad for p in model.wav2vec2.feature_encoder.parameters())
    split = task.split("train", 1, 0, 1)
    batch = split.collate([split.dataset[i] for i in range(4)])
    out = task.train_step(model, batch, 0)
    ref = 0.0
    for i in range(4):
        L = int(batch["lengths"][i])
        o = model(batch["source"][i : i + 1, :L])
        logits, n = o.logits, o.out_lengths
        lp = logits.log_softmax(-1).transpose(0, 1)
        t = batch["target"][i, : batch["target_lengths"][i]]
        ref += torch.nn.functional.ctc_loss(lp, t[None], n, t.new_tensor([len(t)]), reduction="sum")
    # (GroupNorm-free tiny preset: padding does not change the per-utterance features)
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=2e-3)
    assert out.sample_size == 4
    m = task.reduce_metrics({"loss": float(out.loss.detach()), "sample_size": 4.0, **out.logs})
    assert 0.0 <= m["blank_frac"] <= 1.0


def test_all_blank_alarm_after_freeze():
    chk = CTCAlarmChecker(freeze_end=100, threshold=0.99, grace=50)
    assert chk.check(120, {"blank_frac": 1.0}) == []  # still in the grace period
    alarms = chk.check(200, {"blank_frac": 1.0})
    assert [a.name for a in alarms] == ["all_blank"]
    assert chk.check(210, {"blank_frac": 1.0}) == []  # fires once
    assert chk.check(220, {"blank_frac": 0.5}) == []


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and 2 threads thrash when the other core is busy)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_model_overfits_and_decodes(tmp_path, one_thread):
    """Fine-tune from a (random) pretrained checkpoint on 6 utterances: greedy WER -> ~0 (about 4 s)."""
    from speech_ssl.decode.run import DecodeOptions, decode_manifest
    from speech_ssl.train.trainer import Trainer

    make_corpus(tmp_path)
    cfg = load_task_config("ctc", write_config(tmp_path, pretrained=_pretrained(tmp_path)))
    task = CTCTask(cfg, "ft.yaml")
    trainer = Trainer(cfg, task, tmp_path / "run")
    trainer.setup()
    metrics = trainer.train()
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    valid = [e for e in log if e.get("split") == "valid"]
    assert valid, log[-3:]
    assert metrics["wer"] <= 10.0, metrics
    assert math.isfinite(metrics["loss"])
    best = tmp_path / "run" / "checkpoints" / "best"
    assert (best / "dict.txt").is_file()
    summary = decode_manifest(
        DecodeOptions(checkpoint=str(best), manifest=str(tmp_path / "train.tsv"), out=str(tmp_path / "dec")),
        log=lambda s: None,
    )
    assert summary["score"]["error_rate"] <= 0.1


def test_finetune_cli_runs_and_resumes(tmp_path, one_thread):
    import argparse

    from speech_ssl.cli import finetune as finetune_cli

    make_corpus(tmp_path)
    cfg = write_config(tmp_path, pretrained=_pretrained(tmp_path))
    parser = argparse.ArgumentParser()
    finetune_cli.add_parser(parser.add_subparsers(dest="command"))
    run = tmp_path / "run"
    args = parser.parse_args(["finetune", str(cfg), "optim.max_update=8", "logging.valid_interval_updates=4",
                              "--run-dir", str(run), "--stop-after-updates", "4"])
    assert args.func(args) == 0
    assert (run / "checkpoints" / "checkpoint_00000004" / "dict.txt").is_file()
    meta = json.loads((run / "checkpoints" / "checkpoint_00000004" / "config.json").read_text())
    assert meta["architecture"] == "Wav2Vec2ForCTC" and meta["extra"]["unit"] == "letter"
    args = parser.parse_args(["finetune", str(cfg), "optim.max_update=8", "logging.valid_interval_updates=4",
                              "--run-dir", str(run), "--resume"])
    assert args.func(args) == 0
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert max(e.get("update", 0) for e in log) == 8
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()


def test_backbone_frozen_for_first_updates_then_trained(tmp_path):
    """freeze_finetune_updates: only the head gets gradients before N updates, the Transformer after;
    the conv encoder never does."""
    make_corpus(tmp_path)
    task = CTCTask(load_task_config("ctc", write_config(tmp_path)), "ft.yaml")
    model = task.build_model().train()
    split = task.split("train", 1, 0, 1)
    batch = split.collate([split.dataset[i] for i in range(3)])
    for n, backbone_grads in [(5, False), (10, True)]:
        model.zero_grad(set_to_none=True)
        task.begin_update(model, n)
        task.train_step(model, batch, n).loss.backward()
        assert model.head.weight.grad is not None
        enc = [p.grad is not None for p in model.wav2vec2.encoder.parameters() if p.requires_grad]
        assert all(enc) if backbone_grads else not any(enc)
        assert all(p.grad is None for p in model.wav2vec2.feature_encoder.parameters())


def test_phone_units_report_per(tmp_path):
    make_corpus(tmp_path)
    lines = (tmp_path / "train.ltr").read_text().splitlines()
    (tmp_path / "train.phn").write_text("".join(ln.replace(" |", "").replace("|", "") + "\n" for ln in lines))
    (tmp_path / "dict.phn.txt").write_text("".join(f"{s} 10\n" for s in LETTERS))
    cfg = load_task_config("ctc", write_config(tmp_path), ["finetune.labels=phn"])
    task = CTCTask(cfg, "ft.yaml")
    assert task.unit == "phone"
    model = task.build_model().eval()
    split = task.split("valid", 1, 0, 1)
    batch = split.collate([split.dataset[i] for i in range(len(split.dataset))])
    with torch.no_grad():
        out = task.valid_step(model, batch)
    m = task.reduce_metrics({"loss": float(out.loss), "sample_size": out.sample_size, **out.logs})
    assert m["per"] == m["wer"] and out.logs["word_total"] == sum(len(t.replace(" ", "")) for t in TEXTS)


def test_normalize_must_match_pretraining(tmp_path):
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining

    make_corpus(tmp_path)
    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp_path / "pt", extra={"normalize": True})
    task = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=tmp_path / "pt")), "ft.yaml")
    with pytest.raises(ConfigError, match="data.normalize"):
        task.build_model()
    ok = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=tmp_path / "pt"), ["data.normalize=true"]))
    ok.build_model()


def test_continue_from_ctc_checkpoint_same_or_new_head(tmp_path):
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC

    make_corpus(tmp_path)
    syms = ["<s>", "<pad>", "</s>", "<unk>", "|", *LETTERS]
    src = Wav2Vec2ForCTC(get_preset("tiny"), len(syms), syms)
    save_model(src, tmp_path / "ctc")
    model = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=tmp_path / "ctc")), "ft.yaml").build_model()
    torch.testing.assert_close(model.head.weight, src.head.weight)  # same vocab: head kept
    other = ["<s>", "<pad>", "</s>", "<unk>", "|", "X", "Y"]
    save_model(Wav2Vec2ForCTC(get_preset("tiny"), len(other), other), tmp_path / "ctc2")
    cfg = load_task_config("ctc", write_config(tmp_path, pretrained=tmp_path / "ctc2"))
    with pytest.raises(DataError, match="new_head"):
        CTCTask(cfg, "ft.yaml").build_model()
    cfg = load_task_config("ctc", write_config(tmp_path, pretrained=tmp_path / "ctc2"), ["finetune.new_head=true"])
    model = CTCTask(cfg, "ft.yaml").build_model()
    assert model.head.weight.shape[0] == len(syms) and model.vocab == syms


def test_head_lr_scale_gives_the_head_its_own_lr_and_resumes(tmp_path, one_thread):
    """finetune.head_lr_scale: a second AdamW group for the CTC head at scale x the scheduled lr; the
    optimizer state is keyed by name, so a run with two groups resumes exactly."""
    from speech_ssl.train.trainer import Trainer

    make_corpus(tmp_path)
    cfg_file = write_config(tmp_path, pretrained=_pretrained(tmp_path))
    ov = ["finetune.head_lr_scale=10", "optim.max_update=6", "logging.valid_interval_updates=0",
          "checkpoint.save_interval_updates=3", "finetune.freeze_finetune_updates=0"]

    def run(run_dir, stop=None, resume=None):
        cfg = load_task_config("ctc", cfg_file, ov)
        tr = Trainer(cfg, CTCTask(cfg, "ft.yaml"), run_dir, stop_after_updates=stop)
        tr.setup(resume=resume)
        tr.train()
        return tr

    full = run(tmp_path / "a")
    body, head = full.optimizer.param_groups
    assert len(head["params"]) == 2 and head["params"][0] is full.raw_model.head.weight
    assert head["lr"] == pytest.approx(10 * body["lr"]) and body["lr"] > 0
    run(tmp_path / "b", stop=3)
    resumed = run(tmp_path / "b", resume=True)
    assert resumed.num_updates == 6
    for (n, p), q in zip(full.raw_model.named_parameters(), resumed.raw_model.parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(ConfigError, match="head_lr_scale"):
        load_task_config("ctc", cfg_file, ["finetune.head_lr_scale=0"])


def test_reinit_layers_gives_the_top_layers_fresh_weights(tmp_path):
    """finetune.reinit_layers=N: the top N Transformer layers (and the pre-LN final LayerNorm) start fresh,
    everything below keeps the pretrained weights; more layers than the model has is a config error."""
    from speech_ssl.models.checkpoint import load_model

    make_corpus(tmp_path)
    pt = _pretrained(tmp_path)
    src = load_model(pt).wav2vec2.state_dict()
    L = len(load_model(pt).wav2vec2.encoder.layers)
    torch.manual_seed(0)
    cfg = load_task_config("ctc", write_config(tmp_path, pretrained=pt), ["finetune.reinit_layers=1"])
    got = CTCTask(cfg, "ft.yaml").build_model().wav2vec2.state_dict()
    top = f"encoder.layers.{L - 1}."
    for k, v in src.items():
        changed = not torch.equal(v, got[k])
        fresh = k.startswith(top) and k.endswith("weight") and v.ndim == 2
        if fresh:
            assert changed, k
        elif not k.startswith(top) and k != "encoder.layer_norm.weight" and k != "encoder.layer_norm.bias":
            assert not changed, k
    with pytest.raises(ConfigError, match="reinit_layers"):
        CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=pt), [f"finetune.reinit_layers={L + 1}"]),
                "ft.yaml").build_model()
    with pytest.raises(ConfigError, match="needs finetune.pretrained"):
        CTCTask(load_task_config("ctc", write_config(tmp_path), ["finetune.reinit_layers=1"]), "ft.yaml").build_model()


def test_new_head_bias_starts_at_the_frame_level_unit_prior(tmp_path):
    """head_bias_init=prior: softmax(bias) = blank 1 - labels/frames, labels by their (smoothed) counts."""
    def conv_out_length(n, layers):  # by hand: floor((n - k) / s) + 1 per conv block
        for _, k, s in layers:
            n = (n - k) // s + 1
        return n

    make_corpus(tmp_path)
    ck = _pretrained(tmp_path)
    task = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=ck)), "ft.yaml")
    model = task.build_model()
    layers = [tuple(x) for x in model.cfg.conv_feature_layers]
    rows = (tmp_path / "train.tsv").read_text().splitlines()[1:]
    frames = sum(conv_out_length(int(r.split("\t")[1]), layers) for r in rows)
    labels = [s for line in (tmp_path / "train.ltr").read_text().splitlines() for s in line.split()]
    q = model.head.bias.detach().double().softmax(-1)
    assert float(q[0]) == pytest.approx(1 - len(labels) / frames, rel=1e-5)
    sym = task.symbols
    counts = {s: labels.count(s) for s in sym}
    a, b = sym.index("A"), sym.index("|")
    assert float(q[a] / q[b]) == pytest.approx((counts["A"] + 0.5) / (counts["|"] + 0.5), rel=1e-5)
    assert float(q[sym.index("<pad>")]) > 0  # never-seen specials keep a small mass
    assert float(model.head.weight.detach().abs().max()) == 0.0  # zero weights: the same prior on every frame

    for extra, check in [
        (["finetune.head_bias_init=zero"], lambda m: float(m.head.bias.detach().abs().max()) == 0.0),  # fairseq / HF
        (["finetune.init_blank_prob=0.9"], lambda m: float(m.head.bias.detach().softmax(-1)[0]) == pytest.approx(0.9, rel=1e-5)),
        (["finetune.head_weight_init=xavier"], lambda m: float(m.head.weight.detach().std()) > 0.01),  # fairseq
        (["finetune.head_weight_init=hf"], lambda m: float(m.head.weight.detach().std()) == pytest.approx(0.02, rel=0.2)),
    ]:
        t = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=ck), extra), "ft.yaml")
        assert check(t.build_model()), extra
    with pytest.raises(ConfigError, match="init_blank_prob"):
        load_task_config("ctc", write_config(tmp_path), ["finetune.init_blank_prob=1.5"])


def test_continued_ctc_model_keeps_its_head(tmp_path):
    from speech_ssl.models.checkpoint import load_model

    make_corpus(tmp_path)
    task = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=_pretrained(tmp_path))), "ft.yaml")
    model = task.build_model()
    with torch.no_grad():
        model.head.bias.uniform_(-3, 3)
    task.save_weights(model, tmp_path / "ctc")
    again = CTCTask(load_task_config("ctc", write_config(tmp_path, pretrained=tmp_path / "ctc")), "ft.yaml").build_model()
    assert torch.equal(again.head.bias, load_model(tmp_path / "ctc").head.bias)


def test_frame_mutual_information():
    from speech_ssl.train.ctc_task import frame_mutual_information

    # every frame the same distribution: the output says nothing about the input
    p = torch.tensor([0.5, 0.3, 0.2])
    h = float(-(p * p.log2()).sum())
    mi, frac = frame_mutual_information((10 * p).tolist(), 10 * h, 10)
    assert mi == pytest.approx(0.0, abs=1e-9) and frac == pytest.approx(0.0, abs=1e-9)
    # one-hot frames spread over 4 symbols: I = H(output) = 2 bits
    mi, frac = frame_mutual_information([2.0, 2.0, 2.0, 2.0], 0.0, 8)
    assert mi == pytest.approx(2.0) and frac == pytest.approx(1.0)


def test_stuck_alarms_blank_free_and_input_independent():
    chk = CTCAlarmChecker(freeze_end=0, threshold=0.999, grace=50, stuck_mi_frac=0.3, stuck_validations=2,
                          blank_free_updates=100)
    assert chk.check_valid(40, {"frame_mi_frac": 0.1, "blank_frac": 0.0}) == []  # grace period
    assert chk.check_valid(60, {"frame_mi_frac": 0.1, "blank_frac": 0.0, "per": 80.0}) == []  # one of two
    alarms = chk.check_valid(80, {"frame_mi_frac": 0.1, "blank_frac": 0.0, "per": 80.0})
    assert [a.name for a in alarms] == ["stuck_at_prior"] and "head_bias_init" in alarms[0].message
    assert chk.check_valid(100, {"frame_mi_frac": 0.1, "blank_frac": 0.0}) == []  # fires once
    assert chk.check_valid(120, {"frame_mi_frac": 0.6, "blank_frac": 0.7}) == []  # re-arms
    # blank wins no frame for 100 updates
    assert chk.check(10, {"blank_frac": 0.0}) == []
    assert chk.check(100, {"blank_frac": 0.001}) == []
    assert [a.name for a in chk.check(110, {"blank_frac": 0.0})] == ["blank_free"]
    assert chk.check(120, {"blank_frac": 0.0}) == []
    assert chk.check(130, {"blank_frac": 0.4}) == []  # blank came back: re-armed
    assert chk.check(140, {"blank_frac": 0.0}) == []


def test_stuck_at_prior_alarm_reaches_the_log(tmp_path, one_thread):
    """A fresh model that cannot learn (lr ~ 0) says the same thing on every frame: the validation alarm
    lands in the log and in log.jsonl."""
    from speech_ssl.train.trainer import Trainer

    make_corpus(tmp_path)
    cfg = load_task_config("ctc", write_config(tmp_path, pretrained=_pretrained(tmp_path)), [
        "optim.lr=1e-9", "optim.max_update=6", "logging.valid_interval_updates=2", "finetune.all_blank_grace_updates=0",
        "finetune.freeze_finetune_updates=0",
    ])
    trainer = Trainer(cfg, CTCTask(cfg, "ft.yaml"), tmp_path / "run")
    trainer.setup()
    trainer.train()
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    valid = [e for e in log if e.get("split") == "valid"]
    assert valid and all(e["frame_mi_frac"] < 0.05 for e in valid)
    alarms = [e for e in log if e.get("alarm") == "stuck_at_prior"]
    assert len(alarms) == 1 and alarms[0]["update"] == 4


def test_head_and_body_gradient_norms_are_logged(tmp_path, one_thread):
    """gnorm_head / gnorm_body (before clipping) make up the logged gnorm: head² + body² = total²."""
    from speech_ssl.train.trainer import Trainer

    make_corpus(tmp_path)
    cfg = load_task_config("ctc", write_config(tmp_path, pretrained=_pretrained(tmp_path)), [
        "optim.max_update=3", "logging.log_interval=1", "logging.valid_interval_updates=0", "optim.clip_norm=0",
        "finetune.freeze_finetune_updates=0", "finetune.head_weight_init=xavier"])  # zero weights: no body grad at first
    trainer = Trainer(cfg, CTCTask(cfg, "ft.yaml"), tmp_path / "run")
    trainer.setup()
    trainer.train()
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train = [e for e in log if e.get("split") == "train"]
    assert len(train) == 3
    for e in train:
        assert e["gnorm_head"] > 0 and e["gnorm_body"] > 0
        assert math.hypot(e["gnorm_head"], e["gnorm_body"]) == pytest.approx(e["gnorm"], rel=1e-4)


def test_empty_transcript_is_an_error_or_a_counted_skip(tmp_path):
    make_corpus(tmp_path)
    lines = (tmp_path / "train.ltr").read_text().splitlines()
    lines[5] = ""  # the shortest utterance: kept by data.max_sample_size below
    (tmp_path / "train.ltr").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.ltr:6: empty transcript .*finetune.skip_empty_labels=true"):
        CTCTask(load_task_config("ctc", write_config(tmp_path)), "ft.yaml").build_model()
    task = CTCTask(load_task_config("ctc", write_config(tmp_path), ["finetune.skip_empty_labels=true",
                                                                    "data.max_sample_size=12000"]), "ft.yaml")
    task.build_model()
    summary = task.data_summary(0, 1)[0]
    parts = task.datasets("train")
    assert sum(len(p) for p in parts) + parts[0].num_too_long + 1 == len(lines)
    assert parts[0].num_too_long > 0
    assert f"skipped {parts[0].num_too_long + 1}:" in summary and "1 with an empty transcript" in summary
    assert f"{parts[0].num_too_long} longer than data.max_sample_size=12000" in summary
