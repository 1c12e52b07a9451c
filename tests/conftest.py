import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
torch.set_flush_denormal(True)

ROOT = Path(__file__).resolve().parents[1]
# cases produced by running the official code (snu-mllab/PuzzleMix mixup_graph, commit and
# versions in the JSON), vendored so that parity runs in any clone
FIXTURES = ROOT / "tests" / "fixtures" / "reference"


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` (``make gpu-check`` selects them with ``-m cuda``) skip without a
    CUDA device; PUZZLE_CUDA_TESTS_ON=cpu runs tests/test_cuda.py's logic on the CPU."""
    if cuda_available() or os.environ.get("PUZZLE_CUDA_TESTS_ON") == "cpu":
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


# Hermetic runs: everything the suite trains goes to a temporary run root (notebooks run by nbval
# inherit the variable), and the session fails if it wrote into experiments/runs of the checkout.
if not os.environ.get("PUZZLE_RUN_ROOT"):
    import tempfile

    os.environ["PUZZLE_RUN_ROOT"] = tempfile.mkdtemp(prefix="puzzle-runs-")
_CHECKOUT_RUNS = ROOT / "experiments" / "runs"


def _snapshot() -> dict[str, int]:
    if not _CHECKOUT_RUNS.exists():
        return {}
    return {str(p): p.stat().st_mtime_ns for p in _CHECKOUT_RUNS.rglob("*")}


_BEFORE = _snapshot()


def pytest_sessionfinish(session, exitstatus):
    if _snapshot() != _BEFORE:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the test suite wrote into {_CHECKOUT_RUNS}: tests must use temporary run roots"
        if reporter is not None:
            reporter.write_line(f"FAILED hermeticity: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
