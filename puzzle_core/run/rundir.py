"""The files of a run directory, read and written so that damage is found, named and explained.

A run directory holds ``config.json`` (the run's identity), ``metrics.jsonl`` (one line per
finished epoch), ``checkpoint.pt`` (the state after the last finished epoch), ``results.json``
(the final evaluation) and, while a process trains in it, ``run.lock`` / ``run.lock.json``.

- Every file is written atomically (a unique temporary name in the same folder, fsync, rename),
  so an interruption leaves the old or the new file, never half of one.
- ``checkpoint.pt`` is an envelope ``{"format", "identity", "epoch", "sha256", "payload"}``: the
  payload (the ``torch.save`` bytes of the state) is checked against its SHA-256, the identity
  (a hash of the resolved config) against the run's, the epoch against ``metrics.jsonl`` and the
  configured end; it is read with ``weights_only=True`` (no code runs from a data file).
- ``results.json`` and ``config.json`` are validated on read (a JSON object with the required
  keys and types).
- :class:`RunLock`: one process trains in a directory; a second one is told which process
  holds it (a lock released by the operating system when its holder dies, even by kill -9).

Every failure is a :class:`RunDirError` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = 2
LEGACY_KEYS = ("model", "optimizer", "scheduler", "metrics", "epoch")
# fields that say where files are or how a run is shown, not what it computes
PRESENTATION = ("progress", "data_root")
# what a finished run's results.json must hold, with the types each key takes
RESULT_KEYS: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "profile": (str,),
    "dataset": (str,),
    "model": (str,),
    "epochs": (int,),
    "seed": (int,),
    "top1_err": (int, float),
    "top5_err": (int, float),
    "final_top1_err": (int, float),
    "train_loss": (list,),
}


class RunDirError(ValueError):
    """A run directory's file is missing, damaged or belongs to another run; the message names
    the file and what to do."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- identity -----------------------------------------------------------------------------------


def run_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a config dict that define what a run computes (JSON-normalised)."""
    plain = json.loads(json.dumps(dict(config)))
    return {k: v for k, v in plain.items() if k not in PRESENTATION}


def identity(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex, first 16) of the canonical JSON of :func:`run_fields`."""
    text = json.dumps(run_fields(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``["lr: 0.1 stored, 0.2 requested", ...]`` over the run-defining fields."""
    a, b = run_fields(stored), run_fields(wanted)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(
                f"{key}: {json.dumps(a.get(key, '<absent>'))} stored, "
                f"{json.dumps(b.get(key, '<absent>'))} requested"
            )
    return out


# -- JSON files ---------------------------------------------------------------------------------


def read_json_object(path: Path, what: str, remedy: str) -> dict[str, Any]:
    """The JSON object in ``path``; a RunDirError naming it when unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: {what} cannot be read ({exc}); {remedy}") from exc
    if not isinstance(value, dict):
        raise RunDirError(
            f"{path}: {what} must be a JSON object, got {type(value).__name__}; {remedy}"
        )
    return value


def check_results(results: Mapping[str, Any], path: Path | str) -> None:
    """Required keys and types of a finished run's results (see :data:`RESULT_KEYS`)."""
    remedy = "delete it and run again: the final evaluation is redone from checkpoint.pt"
    missing = [k for k in RESULT_KEYS if k not in results]
    if missing:
        raise RunDirError(f"{path}: results lack {missing}; {remedy}")
    for key, types in RESULT_KEYS.items():
        value = results[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise RunDirError(f"{path}: results[{key!r}] must be {names}, got {value!r}; {remedy}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RunDirError(f"{path}: results[{key!r}] is {value}; {remedy}")


def read_results(path: Path) -> dict[str, Any]:
    """A finished run's ``results.json``, validated."""
    remedy = "delete it and run again: the final evaluation is redone from checkpoint.pt"
    results = read_json_object(path, "the run's results", remedy)
    check_results(results, path)
    return results


def read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json`` (its identity), validated as a JSON object with a method."""
    remedy = (
        "it records which run this directory holds: restore it, or delete the run directory "
        "to start the run again"
    )
    cfg = read_json_object(path, "the run's config", remedy)
    if not isinstance(cfg.get("method"), str):
        raise RunDirError(f"{path}: the run's config has no method; {remedy}")
    return cfg


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` ([] when absent); a RunDirError naming a bad line."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunDirError(
                f"{path}: line {n} is not JSON ({exc}); the file is rewritten from "
                "checkpoint.pt at the next finished epoch: delete it to go on"
            ) from exc
        if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
            raise RunDirError(f"{path}: line {n} is not a metrics row with an integer epoch")
        rows.append(row)
    return rows


# -- checkpoints --------------------------------------------------------------------------------


def save_checkpoint(path: Path, state: Mapping[str, Any], run_identity: str) -> None:
    """Write ``state`` (model, optimizer, scheduler, metrics, epoch) inside a checked envelope."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    payload = buf.getvalue()
    envelope = {
        "format": CHECKPOINT_FORMAT,
        "identity": run_identity,
        "epoch": int(state["epoch"]),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    out = io.BytesIO()
    torch.save(envelope, out)
    atomic_write(path, out.getvalue())


def _open_envelope(
    path: Path,
    envelope: dict[str, Any],
    run_identity: str,
    map_location: str | torch.device,
    restart: str,
) -> dict[str, Any]:
    payload = envelope.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise RunDirError(f"{path}: the checkpoint has no payload; {restart}")
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != envelope.get("sha256"):
        raise RunDirError(f"{path}: the checkpoint's checksum does not match (damaged); {restart}")
    if envelope.get("identity") != run_identity:
        raise RunDirError(
            f"{path}: the checkpoint belongs to another run (identity {envelope.get('identity')}, "
            f"this run's is {run_identity}); {restart}"
        )
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def load_checkpoint(
    path: Path,
    run_identity: str,
    epochs: int,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint`, after every check; RunDirError otherwise.

    Checks: readable with ``weights_only=True``; the payload's SHA-256; the identity equals
    ``run_identity`` (the checkpoint belongs to this run); the epoch is inside the configured
    ``epochs``; the metrics inside agree with ``metrics.jsonl`` beside it (which may be one
    epoch ahead: an interruption between the two writes)."""
    restart = (
        "delete it to restart the run from epoch 0 (metrics.jsonl keeps the finished epochs' "
        "numbers until they are rewritten), or put back the run's own checkpoint"
    )
    try:
        envelope = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise RunDirError(
            f"{path}: the checkpoint cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'empty or truncated'}); {restart}"
        ) from exc
    if (
        isinstance(envelope, dict)
        and "format" not in envelope
        and set(LEGACY_KEYS) <= set(envelope)
    ):
        # written before checkpoints carried an identity and a checksum: its epoch and metrics
        # are still checked against metrics.jsonl below
        warnings.warn(
            f"{path}: a checkpoint without identity or checksum (written by an earlier version); "
            "resuming from it after checking its metrics against metrics.jsonl",
            stacklevel=2,
        )
        state = envelope
    elif not isinstance(envelope, dict) or envelope.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path}: not a checkpoint of this project; {restart}")
    else:
        state = _open_envelope(path, envelope, run_identity, map_location, restart)
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if (
        not isinstance(epoch, int)
        or epoch != envelope.get("epoch", epoch)
        or not 0 <= epoch < epochs
    ):
        raise RunDirError(
            f"{path}: the checkpoint's epoch {epoch!r} is outside this run's 0..{epochs - 1}; "
            f"{restart}"
        )
    try:
        inside = [int(m["epoch"]) for m in state["metrics"]]
        for key in LEGACY_KEYS[:3]:
            if not isinstance(state[key], dict):
                raise TypeError(f"{key} is not a state dict")
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(
            f"{path}: the checkpoint's state is incomplete ({exc}); {restart}"
        ) from exc
    if inside != list(range(epoch + 1)):
        raise RunDirError(
            f"{path}: the checkpoint's metrics cover epochs {inside}, not 0..{epoch}; {restart}"
        )
    beside = read_metrics(path.parent / "metrics.jsonl")
    beside_epochs = [int(m["epoch"]) for m in beside]
    if beside_epochs[: epoch + 1] != inside or len(beside_epochs) > epoch + 2:
        raise RunDirError(
            f"{path}: the checkpoint (epoch {epoch}) does not match metrics.jsonl (epochs "
            f"{beside_epochs[:3]}...{beside_epochs[-1:]}): one of them comes from another run; "
            f"{restart}"
        )
    for a, b in zip(state["metrics"], beside, strict=False):
        if a.get("test_top1_err") != b.get("test_top1_err"):
            raise RunDirError(
                f"{path}: epoch {a['epoch']} differs between the checkpoint and metrics.jsonl; "
                f"{restart}"
            )
    return state


# -- the lock -----------------------------------------------------------------------------------


class RunLock:
    """Exclusive use of a run directory by one process (``run.lock``, an OS file lock);
    ``run.lock.json`` says who holds it.  A second process gets a RunDirError naming the
    holder; the lock is freed when the holder exits, however it ends."""

    def __init__(self, run_dir: Path) -> None:
        from filelock import FileLock

        self.run_dir = Path(run_dir)
        self._lock = FileLock(str(self.run_dir / "run.lock"), timeout=0)
        self._owner = self.run_dir / "run.lock.json"

    def __enter__(self) -> RunLock:
        from filelock import Timeout

        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            holder = "another process"
            try:
                info = json.loads(self._owner.read_text())
                holder = f"process {info['pid']} on {info['host']} (since {info['since']})"
            except (OSError, ValueError, KeyError, TypeError):
                pass
            raise RunDirError(
                f"{self.run_dir}: {holder} is training in this run directory; wait for it to "
                "finish or stop it (the run resumes from its last finished epoch)"
            ) from None
        import datetime

        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        atomic_write(self._owner, json.dumps(info).encode())
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner.unlink(missing_ok=True)
        self._lock.release()
