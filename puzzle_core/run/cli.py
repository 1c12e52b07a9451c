"""``python -m puzzle_core.run``: one training run from the command line; a bad value, file or run
directory gets one line on stderr naming it and exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .loop import run


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(args: Sequence[str] | None = None) -> tuple[TrainConfig, Path]:
    """(config, run directory) from the command line; ValueError naming a bad ``--set``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--config", help="a YAML or JSON file of TrainConfig fields")
    ap.add_argument(
        "--profile",
        help="scale the config: smoke | mini | paper (puzzle_core.experiments.PROFILES)",
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override fields, values parsed as JSON when possible",
    )
    ns = ap.parse_args(args)
    overrides: dict[str, Any] = {}
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for item in ns.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set {item}: expected KEY=VALUE (e.g. --set epochs=10)")
        if key not in names:
            raise ValueError(f"--set {key}: not a TrainConfig field; the fields are {names}")
        overrides[key] = _parse_value(value)
    if ns.config:
        from .profiles import load_config

        return load_config(ns.config, ns.profile, **overrides), Path(ns.run_dir)
    cfg = TrainConfig(**overrides)
    if ns.profile:
        from .profiles import apply_profile

        cfg = apply_profile(cfg, ns.profile)
    return cfg, Path(ns.run_dir)


def main(args: Sequence[str] | None = None) -> None:
    """``python -m puzzle_core.run``: a bad value, file or run directory gets one line on
    stderr naming it (no traceback) and exit status 2."""
    torch.set_num_threads(1)
    try:
        cfg, run_dir = config_from_args(args)
        results = run(cfg, run_dir)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(results, indent=1))
