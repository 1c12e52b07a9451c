"""The run engine: one resumable training run for every method of the registry.

``config`` (:class:`TrainConfig`), ``profiles`` (the honest down-scalings of a paper config),
``data`` (data sets, seeded subsets and batches), ``step`` (one mixed training step),
``evaluation`` (test, attack and corruption errors; the results record), ``rundir`` (the run
directory's files, checked on read), ``loop`` (:func:`run`: train, resume or skip; DDP-aware)
and ``cli`` (``python -m puzzle_core.run``).  Imports the algorithms, mixers, models and data;
nothing here imports the reproduction layer (experiments, report, reproduce).
"""

from .config import DATASETS, TrainConfig
from .data import batches_with_masks, build_data
from .loop import TrainedRun, check_device, load_run, run
from .profiles import PROFILES, Profile, apply_profile, get_profile, load_config
from .rundir import RunDirError

__all__ = [
    "DATASETS",
    "PROFILES",
    "Profile",
    "RunDirError",
    "TrainConfig",
    "TrainedRun",
    "apply_profile",
    "batches_with_masks",
    "build_data",
    "check_device",
    "get_profile",
    "load_config",
    "load_run",
    "run",
]
