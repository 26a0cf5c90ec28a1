"""Training checkpoints: atomic folders of weights + config + training state.

Layout of a run directory::

    RUN/checkpoints/checkpoint_00025000/   periodic (the last ``keep_last`` are kept)
        model.safetensors  config.json     the model (speech_ssl.models.checkpoint format)
        train_state.pt                     optimizer, scaler, data position, RNG of every rank, ...
        meta.json                          update count, metric, size + sha256 of every file
    RUN/checkpoints/best/                  the best by validation metric (same layout)

A checkpoint is written into a temporary folder next to its final place, flushed, verified and then
renamed: a crash mid-write leaves a ``.tmp-*`` folder that is never picked up and the previous
checkpoint untouched. ``train_state.pt`` holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from speech_ssl.errors import DataError, describe_load_error
from speech_ssl.files import fsync_dir

META = "meta.json"
STATE = "train_state.pt"
_NAME = re.compile(r"^checkpoint_(\d+)$")


class CheckpointError(DataError):
    """A checkpoint that is missing, truncated or corrupt; the message names the file."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove_stale(parent: Path, name: str = "*") -> None:
    """Remove ``.tmp-NAME-PID`` / ``.old-NAME-PID`` folders that a killed writer left behind (their process is
    gone)."""
    for p in list(parent.glob(f".tmp-{name}-*")) + list(parent.glob(f".old-{name}-*")):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that writer is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(p, ignore_errors=True)


def checkpoint_name(num_updates: int) -> str:
    return f"checkpoint_{num_updates:08d}"


def save_checkpoint(
    dest: Path,
    write_weights: Callable[[Path], None],
    train_state: dict[str, Any] | None,
    meta: dict[str, Any],
    sweep_stale: bool = True,
) -> Path:
    """Write a checkpoint folder at ``dest`` atomically and return it.

    ``write_weights(folder)`` writes ``model.safetensors`` + ``config.json`` into ``folder``.
    An existing ``dest`` is replaced only after the new folder is complete. ``sweep_stale``: then remove
    the temp folders that killed writers left beside it (any checkpoint's; otherwise only ``dest``'s own).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    old = None
    try:
        write_weights(tmp)
        if train_state is not None:
            try:
                torch.save(train_state, tmp / STATE)
            except RuntimeError as e:  # torch reports a failed write (disk full, file-size limit) this way
                raise OSError(str(e).splitlines()[0]) from e
        files = {}
        for p in sorted(tmp.iterdir()):
            if p.is_file():
                _fsync_file(p)
                files[p.name] = {"size": p.stat().st_size, "sha256": _sha256(p)}
        meta = dict(meta)
        meta["files"] = files
        meta_tmp = tmp / (META + ".tmp")
        meta_tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        _fsync_file(meta_tmp)
        meta_tmp.replace(tmp / META)
        fsync_dir(tmp)
        if dest.exists():
            old = dest.parent / f".old-{dest.name}-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            dest.replace(old)
        tmp.replace(dest)
        fsync_dir(dest.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:  # disk full, file-size limit, permissions: the previous checkpoint stays as it was
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not dest.exists():
            old.replace(dest)
        kept = f"{dest.name} is unchanged" if dest.exists() else "the earlier checkpoints are unchanged"
        raise CheckpointError(
            f"could not write the checkpoint ({e.strerror or e}); {kept}: free space (or raise the limit) and "
            "continue with --resume", dest.parent,
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(dest.parent, "*" if sweep_stale else dest.name)
    return dest


def read_meta(ckpt: Path) -> dict[str, Any]:
    path = Path(ckpt) / META
    if not path.is_file():
        raise CheckpointError(f"not a complete checkpoint ({META} missing)", path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"unreadable checkpoint metadata: {e}", path) from e
    if not isinstance(meta, dict) or "files" not in meta:
        raise CheckpointError("checkpoint metadata has no 'files' entry", path)
    return meta


def verify_checkpoint(ckpt: Path, full: bool = True) -> dict[str, Any]:
    """Check every file of ``ckpt`` against the sizes (and, if ``full``, sha256) in its metadata.

    Raises :class:`CheckpointError` naming the first bad file; returns the metadata.
    """
    ckpt = Path(ckpt)
    meta = read_meta(ckpt)
    for name, info in meta["files"].items():
        p = ckpt / name
        if not p.is_file():
            raise CheckpointError("file missing from checkpoint", p)
        size = p.stat().st_size
        if size != info["size"]:
            raise CheckpointError(
                f"truncated or modified: {size} bytes, expected {info['size']} "
                "(the checkpoint is corrupt; use an earlier one)",
                p,
            )
        if full and _sha256(p) != info["sha256"]:
            raise CheckpointError("checksum mismatch: the checkpoint is corrupt; use an earlier one", p)
    return meta


def load_train_state(ckpt: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The training state of ``ckpt`` (verified), loaded without unpickling code."""
    ckpt = Path(ckpt)
    verify_checkpoint(ckpt)
    path = ckpt / STATE
    if not path.is_file():
        raise CheckpointError("no training state in this checkpoint (weights only: use --init-from)", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"cannot read training state: {describe_load_error(e)}", path) from None
    if not isinstance(state, dict) or "num_updates" not in state:
        raise CheckpointError("training state has no 'num_updates'", path)
    return state


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Periodic checkpoints under ``ckpt_dir`` that have metadata, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / META).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def find_latest(ckpt_dir: Path) -> Path | None:
    """The newest periodic checkpoint (by update count), or None."""
    found = list_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


def prune(ckpt_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` periodic checkpoints; returns what was removed."""
    found = list_checkpoints(ckpt_dir)
    removed = []
    for _, p in found[: max(0, len(found) - max(1, keep_last))]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def resolve_resume(path: Path) -> Path:
    """``path`` is a checkpoint folder or a run directory; return the checkpoint to resume from.

    A run directory resolves to its newest checkpoint; when that one is corrupt the error names the
    previous intact one.
    """
    path = Path(path)
    if (path / META).is_file():
        verify_checkpoint(path)
        return path
    ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise CheckpointError("no checkpoint to resume from", ckpt_dir)
    latest = found[-1][1]
    try:
        verify_checkpoint(latest)
    except CheckpointError as e:
        previous = None
        for _, p in reversed(found[:-1]):
            try:
                verify_checkpoint(p)
                previous = p
                break
            except CheckpointError:
                continue
        hint = (
            f"; the previous checkpoint {previous} is intact: resume from it with --resume {previous}"
            if previous
            else "; no intact earlier checkpoint"
        )
        raise CheckpointError(f"{e.reason}{hint}", e.path) from e
    return latest


def _meta_without_files(ckpt: Path) -> dict[str, Any]:
    """The verified metadata of ``ckpt`` without its file list (a copy re-seals its own)."""
    return {k: v for k, v in verify_checkpoint(ckpt).items() if k != "files"}


def _copy_files(src: Path, folder: Path, skip: set[str]) -> None:
    """Copy the files of ``src`` (not sub-folders) byte for byte into ``folder``, except those in ``skip``."""
    for p in sorted(src.iterdir()):
        if p.is_file() and p.name not in skip:
            shutil.copyfile(p, folder / p.name)


def export_weights(src: Path, dest: Path) -> Path:
    """A weights-only copy of the checkpoint folder ``src`` at ``dest``, written like any checkpoint
    (atomically; an existing ``dest`` is replaced only once the copy is complete).

    Every file of ``src`` but ``train_state.pt`` is copied byte for byte (weights, config, ``dict.txt``,
    ``pretrain_info.json``, ...). A training checkpoint is verified against its ``meta.json`` first and
    its update count and metrics carry over; the copy's ``meta.json`` lists the files it holds then, so
    ``verify_checkpoint(dest)`` passes (``add_files`` adds reports later). A folder without ``meta.json``
    (a converted model) is copied too. ``dest`` may be a new folder or an earlier checkpoint / copy; it may
    not be ``src``, hold ``src``, or be any other non-empty folder (it is replaced as a whole).
    """
    src, dest = Path(src), Path(dest)
    if not (src / "model.safetensors").is_file():
        raise CheckpointError("no model.safetensors in this folder (not a speech_ssl checkpoint folder)", src)
    s_real, d_real = src.resolve(), dest.resolve()
    if d_real == s_real or d_real in s_real.parents:
        raise CheckpointError(f"the copy would replace its own source {src}: choose another destination", dest)
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / "model.safetensors").is_file())):
        raise CheckpointError("exists and is not a checkpoint folder: it would be replaced; choose another "
                              "destination", dest)
    meta = _meta_without_files(src) if (src / META).is_file() else {}
    return save_checkpoint(dest, lambda folder: _copy_files(src, folder, skip={STATE, META}), None, meta,
                           sweep_stale=False)


def add_files(ckpt: Path, files: dict[str, bytes]) -> Path:
    """Add or replace small files (reports such as ``pretrain_info.json``) in the checkpoint folder ``ckpt``
    and re-seal its ``meta.json``, so that ``verify_checkpoint(ckpt)`` covers them.

    The folder is verified first (a corrupt one is refused naming the file) and rewritten like any checkpoint:
    atomically, every other file byte for byte. The weights, config, training state and ``meta.json``
    itself cannot be replaced this way.
    """
    ckpt = Path(ckpt)
    for name in files:
        if name != Path(name).name or name in (META, STATE, "model.safetensors", "config.json"):
            raise ValueError(f"add_files: {name!r} is not a report file name")
    meta = _meta_without_files(ckpt)

    def write(folder: Path) -> None:
        _copy_files(ckpt, folder, skip={META, *files})
        for name, data in files.items():
            (folder / name).write_bytes(data)

    return save_checkpoint(ckpt, write, None, meta, sweep_stale=False)
