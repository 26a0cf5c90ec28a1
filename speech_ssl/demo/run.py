"""``speech-ssl demo``: the miniature wav2vec 2.0 / XLSR experiment, end to end, on the embedded corpus.

    run_demo(demo_config(quick=True, overrides=["out=demo_out"]))

Stages (each writes into ``cfg.out`` and is skipped when its output is already there, so an interrupted
demo continues where it stopped):

1. ``corpus/``: the synthetic multilingual corpus (``speech-ssl prepare synth``);
2. ``data/``: manifests and labels (``speech-ssl prepare librispeech|commonvoice``) and the labelled
   English subset ``data/en/train-10m`` (``labelled_seconds`` of LibriSpeech train-clean-100);
3. ``pretrain/``: a short multilingual pretraining from scratch (every language but ``left_out``), for
   its curves; it is also the fine-tuning init when no shipped checkpoint exists;
4. ``finetune/<lang>/<condition>-s<seed>/``: CTC fine-tuning, every condition of a language for the same
   wall time: ``pretrained`` (the shipped or own checkpoint), ``scratch`` (random weights, everything
   trained, conv encoder included) and ``random-frozen`` (random weights through exactly the pretrained
   condition's recipe, conv encoder frozen: the control for cheaper frozen updates); the left-out
   language on phones, also from ``recipes/synth/pretrained_mono`` (English-only) when it exists;
5. ``decode/``: greedy on test, and for English a word 3-gram LM (our modified Kneser-Ney writer, trained on
   the corpus's LM text and the train-clean-100 transcripts, no dev or test sentence; its test perplexity and
   OOV rate are reported) with lexicon beam search, weights tuned on dev;
6. ``results.json``, ``results.md`` and PNG plots; the table is printed.

Every training run gets its wall-time budget like this: a few updates to measure the speed
(``--stop-after-updates``), then ``--resume`` with ``optim.max_update`` set so the schedule (warmup, decay)
fits the remaining time, and SIGTERM at the deadline as a hard stop (the trainer saves and exits). The
calibration updates are stopped no sooner than ``CALIBRATION_GRACE_SECONDS`` after the start, so a budget of a
few seconds on a loaded machine is overshot (and reported in ``wall_seconds``) rather than left without a
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speech_ssl.data.subsets import subset_split
from speech_ssl.decode.ctc import BeamConfig
from speech_ssl.decode.run import DecodeOptions, decode_manifest
from speech_ssl.decode.score import score
from speech_ssl.demo.codes import code_usage, pca_2d
from speech_ssl.demo.config import ASSETS, CONF, SHIPPED, SHIPPED_MONO, DemoConfig
from speech_ssl.demo.results import write_results
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, settings_changes
from speech_ssl.models.random_init import random_like
from speech_ssl.report.plots import plot_code_usage
from speech_ssl.train.signals import EXIT_STOPPED

CALIBRATION_UPDATES = 6
STARTUP_SECONDS = 6.0  # process start + model/data setup, subtracted from a run's budget
CALIBRATION_GRACE_SECONDS = 60.0  # the calibration run is stopped no sooner than this: on a loaded machine a
# tiny budget is overshot rather than ending with no checkpoint


class DemoError(RuntimeError):
    pass


# The settings that decide what the corpus and the runs are: a folder made with other ones is refused, not mixed
# (a quick demo's corpus lacks the full demo's languages; its runs had other budgets).
SETTINGS_FILE = "demo_settings.json"
_SETTINGS = ("quick", "languages", "left_out", "left_out_eval_minutes", "english_minutes", "minutes_per_language",
             "labelled_seconds", "seeds")


def check_settings(out: Path, cfg: DemoConfig) -> None:
    """Record ``cfg``'s corpus and run settings in OUT/demo_settings.json on the first run into ``out``; a later
    run with other ones is refused with the differences named (folders from before this file are trusted)."""
    try:
        diff = settings_changes(out / SETTINGS_FILE, {k: getattr(cfg, k) for k in _SETTINGS})
    except DataError as e:
        raise DemoError(str(e)) from e
    if diff:
        raise DemoError(f"{out} holds a demo made with other settings ({'; '.join(diff)}): remove it or choose "
                        f"another --out")


class Demo:
    """Runs the stages of the module docstring; ``log`` prints progress lines."""

    def __init__(self, cfg: DemoConfig, log=None):
        self.cfg = cfg
        self.out = Path(cfg.out).resolve()
        self.data = self.out / "data"
        self.corpus = self.out / "corpus"
        self.t0 = time.time()
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []

    # ------------------------------------------------------------------------------------------------ utils
    def log(self, msg: str) -> None:
        self._log(f"[demo {time.time() - self.t0:6.0f}s] {msg}")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        n = str(self.cfg.threads)
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, SPEECH_SSL_NO_BAR="1", PYTHONWARNINGS="ignore")
        # the children import the same speech_ssl as this process (installed, or a checkout on sys.path)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        return env

    def ssl(self, args: list[str], log_file: Path, deadline: float | None = None, check: bool = True) -> int:
        """Run ``python -m speech_ssl ARGS`` (output appended to ``log_file``); SIGTERM at ``deadline``."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "speech_ssl", *[str(a) for a in args]]
        with open(log_file, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env())
            terminated = False
            while True:
                try:
                    rc = p.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if deadline is not None and not terminated and time.time() >= deadline:
                        p.send_signal(signal.SIGTERM)  # the trainer saves a checkpoint and exits EXIT_STOPPED
                        terminated = True
        if terminated and rc == EXIT_STOPPED:
            return 0  # stopped at the deadline after saving: the budget's normal end
        if terminated and rc != 0:
            # SIGTERM before the trainer installed its handler (still starting up): nothing was lost, the
            # previous invocation's checkpoint stands.
            with open(log_file, "a") as f:
                f.write(f"(stopped at the deadline during start-up, exit {rc})\n")
            return rc
        if check and rc != 0:
            tail = "".join(log_file.read_text(errors="replace").splitlines(True)[-15:])
            raise DemoError(f"`speech-ssl {' '.join(map(str, args[:2]))}` failed (exit {rc}); see {log_file}:\n{tail}")
        return rc

    def _stage(self, name: str, fn) -> None:
        t = time.time()
        fn()
        self.timings[name] = round(time.time() - t, 1)

    # ------------------------------------------------------------------------------------------------ stages
    def make_corpus(self) -> None:
        c = self.cfg
        if (self.corpus / "synth_info.json").exists():
            self.log(f"corpus: {self.corpus} exists, kept")
            return
        self.log(f"corpus: generating {len(c.languages)} languages with eSpeak NG into {self.corpus}")
        self.ssl([
            "prepare", "synth", "--out", self.corpus, "--languages", ",".join(c.languages),
            "--english-minutes", c.english_minutes, "--minutes-per-language", c.minutes_per_language,
            "--librilight-scale", 0, "--babel-languages", "", "--workers", c.synth_workers, "--no-progress",
            "--eval-minutes", f"{c.left_out}={c.left_out_eval_minutes}",
            "--overwrite",
        ], self.out / "logs" / "corpus.log")

    def cv_dir(self, lang: str) -> Path:
        return self.data / "cv" / lang

    def prepare_data(self) -> None:
        c = self.cfg
        logs = self.out / "logs" / "prepare.log"
        if not (self.data / "librispeech" / "test-clean.tsv").exists():
            self.ssl(["prepare", "librispeech", "--root", self.corpus / "LibriSpeech", "--out",
                      self.data / "librispeech", "--workers", 2], logs)
        cv_root = next(self.corpus.glob("cv-corpus-*"), None)
        for lang in c.languages:
            if lang == "en" or (self.cv_dir(lang) / "test.tsv").exists():
                continue
            if cv_root is None:
                raise DemoError(f"{self.corpus}: no CommonVoice layout (cv-corpus-*) for {lang}")
            self.ssl(["prepare", "commonvoice", "--root", cv_root / lang, "--out", self.cv_dir(lang),
                      "--workers", 2], logs)
        dest = self.data / "en" / "train-10m.tsv"
        if not dest.exists():
            s = subset_split(self.data / "librispeech" / "train-clean-100.tsv", dest, c.labelled_seconds, seed=1)
            self.log(f"data: English labelled split {dest.name}: {s['rows']} utterances, {s['seconds']:.0f} s")

    def pretrain_manifests(self) -> list[str]:
        tr = [str(self.data / "librispeech" / "train-clean-100.tsv")]
        tr += [str(self.cv_dir(lang) / "train.tsv") for lang in self.cfg.languages if lang not in ("en", self.cfg.left_out)]
        return tr

    def budgeted_train(self, kind: str, config: Path, overrides: list[str], run_dir: Path, seconds: float,
                       max_update_cap: int | None = None) -> dict:
        """Train for ``seconds`` of wall time (see the module docstring); returns updates and wall time."""
        done = run_dir / "done.json"
        args = [str(kind), str(config), *map(str, overrides), f"seconds={seconds}"]
        if done.exists():
            info = json.loads(done.read_text())
            if info.get("args") == args:
                return info
            self.log(f"{run_dir}: its settings changed (e.g. another init checkpoint); training it again")
        for stale in (run_dir, self.out / "decode" / run_dir.parent.name / run_dir.name):
            if stale.exists():
                shutil.rmtree(stale)  # an interrupted budgeted run cannot be continued fairly: redo it
        log_file = run_dir.parent / f"{run_dir.name}.log"
        if log_file.exists():
            log_file.unlink()
        t0 = time.time()
        deadline = t0 + seconds
        common = [kind, config, *overrides, f"device={self.cfg.device}",
                  "logging.log_interval=1", "logging.progress_bar=false", "logging.tensorboard=false",
                  "checkpoint.save_interval_updates=0", "checkpoint.keep_last=1"]
        guess = max_update_cap or 100_000
        self.ssl([*common, f"optim.max_update={guess}", "--run-dir", run_dir, "--stop-after-updates",
                  CALIBRATION_UPDATES], log_file, deadline=max(deadline, t0 + CALIBRATION_GRACE_SECONDS))
        sec_per_update = _seconds_per_update(run_dir / "log.jsonl")
        first = _last_update(run_dir / "log.jsonl")
        left = deadline - time.time() - STARTUP_SECONDS
        planned = first + max(1, int(left / sec_per_update)) if math.isfinite(sec_per_update) else first + 1
        if max_update_cap is not None:
            planned = min(planned, max_update_cap)
        if planned > first and left > sec_per_update:
            self.ssl([*common, f"optim.max_update={planned}", "--run-dir", run_dir, "--resume"], log_file,
                     deadline=deadline)
        wall = time.time() - t0
        ck = _newest_checkpoint(run_dir / "checkpoints")
        info = {"updates": _last_update(run_dir / "log.jsonl"), "planned_updates": planned, "wall_seconds": round(wall, 1),
                "seconds_per_update": round(sec_per_update, 3), "checkpoint": str(ck) if ck else None, "args": args}
        if ck is None:
            raise DemoError(f"{run_dir}: training wrote no checkpoint; see {log_file}")
        done.write_text(json.dumps(info, indent=1) + "\n")
        return info

    def pretrain(self) -> dict:
        c = self.cfg
        tr = "[" + ",".join(self.pretrain_manifests()) + "]"
        valid = f"[{self.data / 'librispeech' / 'dev-clean.tsv'}]"
        self.log(f"pretraining from scratch for {c.pretrain_seconds:.0f} s on {len(self.pretrain_manifests())} "
                 f"languages (all but {c.left_out})")
        info = self.budgeted_train(
            "pretrain", CONF / "pretrain.yaml",
            [f"data.train={tr}", f"data.valid={valid}", f"seed={c.seeds[0]}",
             f"logging.valid_interval_updates={max(5, c.pretrain_max_update // 10)}", *c.pretrain_overrides],
            self.out / "pretrain", c.pretrain_seconds, max_update_cap=c.pretrain_max_update,
        )
        log = _read_events(self.out / "pretrain" / "log.jsonl")
        tr_ev = [e for e in log if e.get("split") == "train"]
        va_ev = [e for e in log if e.get("split") == "valid"]
        info["first"] = _pick(tr_ev[0]) if tr_ev else {}
        info["last"] = _pick(tr_ev[-1]) if tr_ev else {}
        info["valid_last"] = _pick(va_ev[-1]) if va_ev else {}
        self.log(f"pretraining: {info['updates']} updates in {info['wall_seconds']:.0f} s; loss "
                 f"{info['first'].get('loss', float('nan')):.3f} -> {info['last'].get('loss', float('nan')):.3f} bits, "
                 f"accuracy {info['first'].get('accuracy', float('nan')):.3f} -> {info['last'].get('accuracy', float('nan')):.3f}")
        return info

    def choose_checkpoint(self, own: dict) -> tuple[str, str]:
        """(path, description) of the checkpoint the fine-tuning starts from."""
        p = self.cfg.pretrained
        if p == "auto":
            if (SHIPPED / "model.safetensors").exists():
                return str(SHIPPED), f"shipped checkpoint speech_ssl/demo/assets/pretrained ({_shipped_note(SHIPPED)})"
            p = "none"
        if p == "none":
            return own["checkpoint"], (f"demo's own pretraining ({own['updates']} updates, "
                                       f"{own['wall_seconds']:.0f} s; no shipped checkpoint in {SHIPPED})")
        if not (Path(p) / "model.safetensors").exists() and not Path(p + ".safetensors").exists():
            raise DemoError(f"--pretrained {p}: not a checkpoint (model.safetensors + config.json)")
        return str(Path(p).resolve()), f"given checkpoint {p}"

    def random_checkpoint(self, like: str, seed: int) -> Path:
        """A pretraining model with ``like``'s architecture and fresh random weights (seeded)."""
        return random_like(like, self.out / "random_init" / f"s{seed}", seed)

    def finetune_all(self, ck: str) -> list[dict]:
        c = self.cfg
        results = []
        conf = CONF / "finetune.yaml"
        en = self.data / "en"
        ky = self.cv_dir(c.left_out)
        jobs: list[tuple[str, str, str, list[str], float]] = []
        for seed in c.seeds:
            rnd = str(self.random_checkpoint(ck, seed))
            base_en = [f"data.train=[{en / 'train-10m.tsv'}]", "finetune.labels=ltr", f"seed={seed}"]
            base_ky = [f"data.train=[{ky / 'train.tsv'}]", "finetune.labels=phn", f"seed={seed}"]
            for lang, base, secs in (("en", base_en, c.finetune_seconds), (c.left_out, base_ky, c.finetune_left_out_seconds)):
                conds = [("pretrained", [f"finetune.pretrained={ck}"])]
                if lang != "en" and (SHIPPED_MONO / "model.safetensors").exists():
                    conds.append(("pretrained-mono-en", [f"finetune.pretrained={SHIPPED_MONO}"]))
                conds += [
                    ("scratch", [f"finetune.pretrained={rnd}", "model.overrides.feature_grad_mult=1.0",
                                 "finetune.freeze_finetune_updates=0"]),
                    ("random-frozen", [f"finetune.pretrained={rnd}"]),
                ]
                for name, extra in conds:
                    jobs.append((lang, name, str(seed), [*base, *extra, *c.finetune_overrides], secs))
        for lang, name, seed, ov, secs in jobs:
            run_dir = self.out / "finetune" / lang / f"{name}-s{seed}"
            self.log(f"fine-tuning {lang} {name} seed {seed} for {secs:.0f} s")
            info = self.budgeted_train("finetune", conf, ov, run_dir, secs)
            ev = [e for e in _read_events(run_dir / "log.jsonl") if e.get("split") == "train"]
            info.update(lang=lang, condition=name, seed=int(seed), run_dir=str(run_dir),
                        last_train=_pick(ev[-1]) if ev else {})
            results.append(info)
        return results

    def build_lm(self) -> tuple[Path, Path] | None:
        """Word n-gram on text without any dev or test sentence: the corpus's LM text (sentences no split reads)
        plus the English train transcripts; its perplexity and OOV rate on the test transcripts go in the
        results next to every WER with it."""
        if not self.cfg.lm:
            return None
        lm_dir = self.out / "lm"
        arpa, lex = lm_dir / f"en.{self.cfg.lm_order}gram.arpa", lm_dir / "en.lexicon.txt"
        if not arpa.exists():
            self.log("LM: word n-gram on the corpus's LM text + the English train transcripts (no dev/test sentence)")
            text = lm_dir / "en.lm.txt"
            lm_dir.mkdir(parents=True, exist_ok=True)
            parts = [self.corpus / "lm_text" / "en.txt", self.data / "librispeech" / "train-clean-100.wrd"]
            atomic_write_text(text, "".join(p.read_text(encoding="utf-8") for p in parts))
            self.ssl(["lm", "build", "--text", text, "--order", self.cfg.lm_order, "--out", arpa,
                      "--lexicon-out", lex, "--upper"], self.out / "logs" / "lm.log")
            self.ssl(["lm", "eval", "--lm", arpa, "--text", self.data / "librispeech" / "test-clean.wrd",
                      "--json", lm_dir / "eval_test.json"], self.out / "logs" / "lm.log")
        return arpa, lex

    def decode(self, run: dict, lm: tuple[Path, Path] | None) -> dict:
        """Greedy on test; English also LM beam search with (lm_weight, word_score) tuned on dev (that decode
        of test gives the greedy scores too). In-process."""
        lang = run["lang"]
        ck = run["checkpoint"]
        dec = self.out / "decode" / lang / Path(run["run_dir"]).name
        if lang == "en":
            test, dev, labels = self.data / "librispeech" / "test-clean.tsv", self.data / "librispeech" / "dev-clean.tsv", "wrd"
        else:
            test, dev, labels = self.cv_dir(lang) / "test.tsv", None, "phn"
        logf = self.out / "logs" / "decode.log"
        logf.parent.mkdir(parents=True, exist_ok=True)

        def log(msg: str) -> None:
            with open(logf, "a") as f:
                f.write(msg + "\n")

        def run_decode(out: Path, manifest: Path, **kw) -> None:
            if (out / "summary.json").exists():
                return
            log(f"== {out}")
            with _fd_to_file(logf):  # flashlight/KenLM print progress bars from C straight to fd 1
                decode_manifest(DecodeOptions(checkpoint=str(ck), manifest=str(manifest), out=str(out),
                                              labels=labels, device=self.cfg.device, num_workers=0, **kw), log=log)

        res: dict = {}
        if lm is None or lang != "en" or dev is None:
            run_decode(dec / "greedy", test)
            res["greedy"] = self._scores(dec / "greedy", char=lang == "en")
        else:  # the LM decode of test reports greedy too, from the same forward pass
            arpa, lex = lm
            c = self.cfg
            run_decode(dec / "tune", dev, beam=BeamConfig(lm=str(arpa), lexicon=str(lex), beam=c.lm_beam), tune=True,
                       tune_lm_weights=list(c.tune_lm_weights), tune_word_scores=list(c.tune_word_scores))
            best = json.loads((dec / "tune" / "summary.json").read_text())["tune"]["best"]
            run_decode(dec / "lm", test, beam=BeamConfig(lm=str(arpa), lexicon=str(lex), beam=c.lm_beam,
                                                         lm_weight=best["lm_weight"], word_score=best["word_score"]))
            res["greedy"] = self._scores(dec / "lm", char=True, greedy=True)
            res["lm"] = self._scores(dec / "lm", char=True)
            res["lm"].update(lm_weight=best["lm_weight"], word_score=best["word_score"])
        return res

    def _scores(self, d: Path, char: bool, greedy: bool = False) -> dict:
        """Error rates of the decode in ``d``; ``greedy``: those of the greedy hypotheses that a beam-search
        decode keeps beside its own (RTF then that of the forward pass; greedy search adds ~0.1% to it)."""
        s = json.loads((d / "summary.json").read_text())
        sc = s["score"]
        if greedy:
            out = {sc["metric"].lower(): s["greedy_error_rate"], "rtf": s["model_seconds"] / max(s["audio_seconds"], 1e-9)}
        else:
            out = {sc["metric"].lower(): sc["error_rate"], "rtf": s.get("rtf")}
        if char:
            rows = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines() if x.strip()]
            hyp = "hyp_greedy" if greedy else "hyp"
            out["cer"] = score([r["ref"] for r in rows], [r[hyp] for r in rows], unit="char").error_rate
        return out

    def code_figure(self, ck: str) -> dict:
        man = {"en": self.data / "librispeech" / "train-clean-100.tsv"}
        man.update({lang: self.cv_dir(lang) / "train.tsv" for lang in self.cfg.languages if lang != "en"})
        usage = code_usage(ck, man, max_utterances=self.cfg.code_usage_utterances)
        langs = list(usage)
        xy, explained = pca_2d(np.stack([usage[k] for k in langs]))
        plot_code_usage(xy, langs, explained, self.out / "plots" / "code_usage_pca.png", highlight=self.cfg.left_out,
                        title="quantizer code usage per language (PCA)")
        return {"languages": langs, "xy": xy.round(5).tolist(), "explained": explained.round(4).tolist()}


def run_demo(cfg: DemoConfig, log=None) -> dict:
    """All stages; returns the results mapping (also written to OUT/results.json)."""
    torch.set_num_threads(cfg.threads)
    d = Demo(cfg, log)
    d.out.mkdir(parents=True, exist_ok=True)
    check_settings(d.out, cfg)
    d.log(f"writing into {d.out} ({'quick' if cfg.quick else 'full'} mode, seeds {cfg.seeds}, {cfg.threads} threads)")
    d._stage("corpus", d.make_corpus)
    d._stage("prepare", d.prepare_data)
    own: dict = {}
    d._stage("pretrain", lambda: own.update(d.pretrain()))
    ck, ck_desc = d.choose_checkpoint(own)
    d.log(f"fine-tuning starts from the {ck_desc}")
    mono = None
    if (SHIPPED_MONO / "model.safetensors").exists():
        mono = {"path": str(SHIPPED_MONO), "description": f"shipped English-only checkpoint "
                f"speech_ssl/demo/assets/pretrained_mono ({_shipped_note(SHIPPED_MONO)})"}
        d.log(f"{cfg.left_out} is also fine-tuned from the {mono['description']}")
    runs: list[dict] = []
    d._stage("finetune", lambda: runs.extend(d.finetune_all(ck)))
    lm: list = []
    d._stage("lm", lambda: lm.append(d.build_lm()))
    for r in runs:
        t = time.time()
        r["scores"] = d.decode(r, lm[0])
        d.timings["decode"] = round(d.timings.get("decode", 0.0) + time.time() - t, 1)
    codes: dict = {}
    d._stage("codes", lambda: codes.update(d.code_figure(ck)))
    sweep_file = ASSETS / f"seeds_{cfg.left_out}.json"
    sweep = None
    if sweep_file.exists():
        sweep = {**json.loads(sweep_file.read_text()), "file": f"recipes/synth/results/seeds_{cfg.left_out}.json"}
    lm_eval = d.out / "lm" / "eval_test.json"
    results = {
        "seed_sweep": sweep,
        "lm_eval": json.loads(lm_eval.read_text()) if lm_eval.exists() else None,
        "config": asdict(cfg),
        "checkpoint": {"path": ck, "description": ck_desc},
        "checkpoint_mono": mono,
        "pretraining": own,
        "finetuning": runs,
        "code_usage": codes,
        "timings": d.timings,
        "wall_seconds": round(time.time() - d.t0, 1),
        "notes": d.notes,
    }
    write_results(d.out, results)
    return results


# ---------------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _fd_to_file(path: Path):
    """Send file descriptors 1 and 2 (C-level output too) to ``path`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _pick(e: dict) -> dict:
    keys = ("update", "loss", "accuracy", "code_perplexity", "prob_perplexity", "temp", "nll_loss", "blank_frac",
            "wer", "uer", "lr")
    return {k: e[k] for k in keys if k in e}


def _seconds_per_update(path: Path) -> float:
    """Median seconds per update over the train lines of a log (from audio seconds and throughput)."""
    vals = []
    for e in _read_events(path):
        if e.get("split") == "train" and e.get("audio_s_per_s") and e.get("audio_h_per_update") is not None:
            vals.append(e["audio_h_per_update"] * 3600.0 / e["audio_s_per_s"])
    vals = vals[1:] or vals  # the first update carries one-off setup costs
    if not vals:
        return float("nan")
    vals.sort()
    # the lower quartile: the first updates run slower than the rest (allocator, caches), and the median
    # left runs ending 15-25% before their budget on the demo machine
    return vals[len(vals) // 4]


def _last_update(path: Path) -> int:
    ups = [int(e["update"]) for e in _read_events(path) if e.get("split") == "train"]
    return max(ups) if ups else 0


def _newest_checkpoint(folder: Path) -> Path | None:
    cks = sorted(p for p in folder.glob("checkpoint_*") if (p / "model.safetensors").exists())
    return cks[-1] if cks else None


def _shipped_note(folder: Path) -> str:
    """One line on how a shipped checkpoint was made: updates and held-out accuracy from its log."""
    parts = []
    info = folder / "pretrain_info.json"
    log = folder / "pretrain_log.jsonl"
    try:
        if info.exists():
            i = json.loads(info.read_text())
            parts.append(f"{i.get('updates', '?')} updates on {i.get('machine', 'an unknown machine')}")
        elif log.exists():
            ev = _read_events(log)
            tr = [e for e in ev if e.get("split") == "train"]
            va = [e for e in ev if e.get("split") == "valid" and "accuracy" in e]
            if tr:
                parts.append(f"{tr[-1]['update']} updates")
            if va:
                parts.append(f"held-out contrastive accuracy {va[-1]['accuracy']:.3f} at update {va[-1]['update']}")
    except (ValueError, OSError, KeyError):
        pass
    where = "PROVENANCE.md" if (folder / "PROVENANCE.md").exists() else "recipes/synth/README.md"
    return ", ".join(parts + [f"see {where}"])
