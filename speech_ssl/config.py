"""Typed configuration: dataclasses <-> YAML, with dotted command-line overrides.

Every component has its own dataclass. A recipe is a YAML file whose nested mappings mirror the
dataclasses; ``key.sub=value`` overrides on the command line are applied on top. Unknown keys and
values of the wrong type are errors that name the key and, when the value came from a file, the file
and line.

    cfg = load_config(TrainConfig, "recipes/synth/conf/pretrain.yaml", ["optim.lr=1e-3"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, read_text

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and, when known, the file and line."""


def _yaml_line(path: Path, keypath: list[str]) -> int | None:
    """1-based line of ``keypath`` in the YAML file ``path`` (None if it cannot be found)."""
    try:
        node = yaml.compose(read_text(path, "config"))
    except Exception:
        return None
    line = None
    for key in keypath:
        if not isinstance(node, yaml.MappingNode):
            return line
        for k, v in node.value:
            if k.value == key:
                line = k.start_mark.line + 1
                node = v
                break
        else:
            return line
    return line


def _where(source: str | None, keypath: list[str]) -> str:
    key = ".".join(keypath) or "<root>"
    if source is None:
        return f"key '{key}'"
    p = Path(source)
    line = _yaml_line(p, keypath) if p.is_file() else None
    return f"{source}:{line}: key '{key}'" if line else f"{source}: key '{key}'"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, keypath: list[str], source: str | None) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, keypath, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{_where(source, keypath)}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(
                f"{_where(source, keypath)}: {value!r} is not one of {list(get_args(tp))}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, keypath)}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, keypath, source)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(source, keypath)}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"{_where(source, keypath)}: expected {len(args)} items, got {len(value)}"
                )
            return tuple(
                _convert(v, a, keypath + [str(i)], source) for i, (v, a) in enumerate(zip(value, args))
            )
        inner = args[0] if args else Any
        items = [_convert(v, inner, keypath + [str(i)], source) for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, keypath)}: expected a mapping, got {value!r}")
        kt, vt = (get_args(tp) or (Any, Any))
        return {
            _convert(k, kt, keypath, source): _convert(v, vt, keypath + [str(k)], source)
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{_where(source, keypath)}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{_where(source, keypath)}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{_where(source, keypath)}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{_where(source, keypath)}: expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{_where(source, keypath)}: cannot read {value!r} as {_type_name(tp)}")


def _from_dict(cls: type[T], data: dict, keypath: list[str], source: str | None) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        raise ConfigError(
            f"{_where(source, keypath + [str(k)])}: unknown key for {cls.__name__} "
            f"(known: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for k, v in data.items():
        default = _field_default(fields[k])
        if isinstance(v, dict) and dataclasses.is_dataclass(default) and not isinstance(default, type):
            # A partly given section starts from the parent's default for it, not the section class's.
            v = _deep_merge(to_dict(default), v)
        kwargs[k] = _convert(v, hints[k], keypath + [k], source)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        # __post_init__ checks start their message with the field's name: point at that key's line.
        first = str(e).split(" ", 1)[0]
        where = keypath + [first] if first in fields else keypath
        raise ConfigError(f"{_where(source, where)}: {e}") from e


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls: type[T], data: dict | None, source: str | None = None) -> T:
    """Build dataclass ``cls`` from a plain mapping, checking every key and type."""
    return _from_dict(cls, dict(data or {}), [], source)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML/JSON-ready Python values (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a","b","c"], value); the value is read as YAML (``1e-3``, ``[1,2]``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value (e.g. optim.lr=5e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: cannot parse value: {e}") from e
    return key.split("."), value


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Set dotted keys in a nested dict (in place, returned for convenience)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: '{k}' is not a mapping")
            node = nxt
        node[keys[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(read_text(path, "config"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    except DataError as e:  # not UTF-8
        raise ConfigError(str(e)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping")
    return data


def load_config(cls: type[T], path: str | Path | None, overrides: typing.Iterable[str] = ()) -> T:
    """Read YAML ``path`` (or start from defaults when None), apply overrides, build ``cls``.

    Errors from the file name the file and line; errors from an override name the override.
    """
    data = read_yaml(path) if path is not None else {}
    overrides = list(overrides)
    source = str(path) if path is not None else None
    # The file alone first, so that its errors point at its lines.
    cfg = from_dict(cls, data, source)
    if not overrides:
        return cfg
    base = copy.deepcopy(data)
    apply_overrides(data, overrides)
    try:
        return from_dict(cls, data, "command-line override")
    except ConfigError:
        # Name the override that breaks it: the first one after which the config no longer builds.
        for item in overrides:
            apply_overrides(base, [item])
            from_dict(cls, base, f"command-line override {item!r}")
        raise


def save_config(obj: Any, path: str | Path) -> None:
    """Write a dataclass as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))
