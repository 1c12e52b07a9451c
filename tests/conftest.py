import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
torch.set_flush_denormal(True)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PUZZLEMIX_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "reference"


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def cuda_available() -> bool:
    return torch.cuda.is_available()
