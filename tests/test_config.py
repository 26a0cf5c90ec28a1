"""The typed config loader: YAML + dotted overrides, errors naming the key, file and line."""

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from speech_ssl.config import ConfigError, load_config, save_config, to_dict


@dataclass
class Optim:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)


@dataclass
class Run:
    name: str = "x"
    steps: int = 10
    mode: Literal["fp32", "bf16"] = "fp32"
    seed: Optional[int] = None
    langs: list[str] = field(default_factory=list)
    optim: Optim = field(default_factory=Optim)


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: a\noptim:\n  lr: 1e-3\nlangs: [en, de]\n")
    cfg = load_config(Run, p, ["optim.betas=[0.8, 0.9]", "steps=20", "seed=null"])
    assert cfg.name == "a" and cfg.steps == 20 and cfg.seed is None
    assert cfg.optim.lr == pytest.approx(1e-3)  # "1e-3" is a string to YAML; read as a number
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.langs == ["en", "de"]


def test_unknown_key_names_file_and_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: a\noptim:\n  lr: 1e-3\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: key 'optim\.momentum': unknown key"):
        load_config(Run, p)


def test_wrong_type_names_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: many\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:1: key 'steps': expected an integer"):
        load_config(Run, p)
    with pytest.raises(ConfigError, match="not one of"):
        load_config(Run, None, ["mode=fp16"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(Run, None, ["mode"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Run, tmp_path / "missing.yaml")


def test_roundtrip(tmp_path):
    cfg = load_config(Run, None, ["langs=[a]", "optim.lr=0.1"])
    save_config(cfg, tmp_path / "out.yaml")
    again = load_config(Run, tmp_path / "out.yaml")
    assert to_dict(again) == to_dict(cfg)


@dataclass
class Parent:
    optim: Optim = field(default_factory=lambda: Optim(lr=0.5, betas=(0.1, 0.2)))


def test_partial_section_keeps_parent_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 0.25\n")
    cfg = load_config(Parent, p)
    assert cfg.optim.lr == 0.25
    assert cfg.optim.betas == (0.1, 0.2)  # the parent's default, not Optim's (0.9, 0.98)


def test_value_errors_point_at_the_key_and_overrides_name_themselves(tmp_path):
    from speech_ssl.train.tasks import load_task_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: pretrain\ndata:\n  train: [a.tsv]\noptim:\n  lr: 0.001\n  update_freq: 0\n")
    with pytest.raises(ConfigError, match=r"c.yaml:6: key 'optim.update_freq': update_freq must be >= 1"):
        load_task_config("pretrain", cfg)
    cfg.write_text("task: pretrain\ndata:\n  train: [a.tsv]\n")
    with pytest.raises(ConfigError, match=r"^command-line override 'optim.update_freq=0': key 'optim.update_freq'"):
        load_task_config("pretrain", cfg, ["optim.lr=0.1", "optim.update_freq=0"])
    (tmp_path / "latin1.yaml").write_bytes("task: pretrain\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml:2: config is not UTF-8 text: byte 0xe9 at column 6"):
        load_task_config("pretrain", tmp_path / "latin1.yaml")
