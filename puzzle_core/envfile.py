"""Generate ``environment.yml`` from ``requirements.txt`` (the single source of truth).

``python -m puzzle_core.envfile`` rewrites environment.yml; ``--check`` exits 1 when it is stale
(the test suite runs the same comparison).  Packages conda-forge ships go to the conda section
(same pins); torch/torchvision (CUDA wheels), gco-wrapper and the headless OpenCV-contrib
wheel (not on conda-forge under those names) stay in pip.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PIP_ONLY = {
    "torch",
    "torchvision",
    "gco-wrapper",
    "opencv-contrib-python-headless",
    "opencv-python",
    "imagecorruptions",
}
CONDA_NAMES = {"pymaxflow": "pymaxflow", "pyyaml": "pyyaml", "scikit-image": "scikit-image"}
PYTHON = "3.11"


def read_requirements(path: Path) -> list[tuple[str, str, str]]:
    """-> [(name, version, why)] from lines ``name==version  # why``."""
    out = []
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)\s*(?:#\s*(.*))?$", line.strip())
        if m:
            out.append((m.group(1), m.group(2), (m.group(3) or "").strip()))
    return out


def render(reqs: list[tuple[str, str, str]]) -> str:
    lines = [
        "# Generated from requirements.txt by `python -m puzzle_core.envfile`; do not edit.",
        "name: puzzlemix-repro",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={PYTHON}",
        "  - pip",
    ]
    pip = []
    for name, ver, _ in reqs:
        key = name.lower()
        if key in PIP_ONLY:
            pip.append(f"      - {name}=={ver}")
        else:
            lines.append(f"  - {CONDA_NAMES.get(key, key)}={ver}")
    lines.append("  - pip:")
    lines.extend(pip)
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--check", action="store_true", help="exit 1 if environment.yml is stale")
    args = ap.parse_args(argv)
    text = render(read_requirements(args.root / "requirements.txt"))
    target = args.root / "environment.yml"
    if args.check:
        ok = target.exists() and target.read_text() == text
        print("environment.yml is up to date" if ok else "environment.yml is stale")
        return 0 if ok else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
