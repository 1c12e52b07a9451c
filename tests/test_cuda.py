"""The CUDA path (``pytest -m cuda``, run by ``make gpu-check``; skipped without a device).

Every stage of Puzzle Mix and the run engine on a CUDA device, against the CPU results."""

import os

import pytest
import torch

from puzzle_core import PuzzleMix, PuzzleMixConfig, apply_plan, grid_cost_matrix
from puzzle_core.bench import CIFAR_MEAN, CIFAR_STD, photo_batch
from puzzle_core.mask.energy import boundary_distances, puzzle_energy
from puzzle_core.models import build_model
from puzzle_core.puzzlemix import solve_mask
from puzzle_core.run import TrainConfig, run
from puzzle_core.saliency import pool_saliency
from puzzle_core.transport import gather_plan, own_cell_choice, saliency_transport

pytestmark = pytest.mark.cuda
# the device under test; PUZZLE_CUDA_TESTS_ON=cpu dry-runs this file's logic without a GPU
DEV = os.environ.get("PUZZLE_CUDA_TESTS_ON", "cuda")


def _photos(b=16, size=32):
    x01, sal = photo_batch(b, size, seed=2)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x01 - mean) / std, torch.arange(b) % 10, sal


@pytest.mark.parametrize("conflict", ["reference", "paper"])
def test_transport_on_cuda_equals_the_compiled_cpu_loop(conflict, gen):
    for side in (2, 4, 8, 16):
        s = torch.rand(12, side, side, generator=gen) ** 3
        s = s / s.sum((1, 2), keepdim=True)
        z = (torch.randint(0, 3, (12, side, side), generator=gen) > 0).float()
        ref = conflict == "reference"
        kw = dict(
            conflict=conflict, penalty=1.0 if ref else float("inf"), max_iter=side if ref else None
        )
        cmat = grid_cost_matrix(side, side)
        cpu = saliency_transport(s, z, 0.8, cmat, backend="cpu", **kw)
        dev = saliency_transport(
            s.to(DEV),
            z.to(DEV),
            0.8,
            cmat.to(DEV),
            backend="torch",
            first_choice=own_cell_choice(z, 0.8).to(DEV),
            **kw,
        )
        assert dev.source.device.type == DEV
        assert torch.equal(cpu.source, dev.source.cpu())
        assert torch.equal(cpu.iterations, dev.iterations.cpu())


def test_apply_plan_on_cuda_equals_cpu(gen):
    x = torch.rand(6, 3, 32, 32, generator=gen)
    src = torch.stack([torch.randperm(64, generator=gen) for _ in range(6)])
    src[::2, ::7] = -1
    assert torch.equal(apply_plan(x, src, 8, 8), gather_plan(x.to(DEV), src.to(DEV), 8, 8).cpu())


def _energy(x, sal, perm, grid, device):
    xs, ss, p = x.to(device), sal.to(device), perm.to(device)
    s_grid = pool_saliency(ss, grid)
    d_v, d_h = boundary_distances(xs, xs[p], grid, 4)
    lam = torch.full((x.shape[0],), 0.4, dtype=torch.float64, device=device)
    beta = 1.2 / grid / 16
    return puzzle_energy(
        s_grid, s_grid[p], d_v, d_h, lam, n_labels=3, beta=beta, gamma=0.5 * beta,
        eta=0.2 / grid**2, phi="reference", prior_eps=1e-8,
    )  # fmt: skip


@pytest.mark.parametrize("solver", ["swap", "exact"])
def test_mask_solvers_take_cuda_energies(solver):
    x, _, sal = _photos()
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    for grid in (4, 16):
        e = _energy(x, sal, perm, grid, "cpu")
        on_cpu = solve_mask(e, solver, "scaled")
        on_dev = solve_mask(_energy(x, sal, perm, grid, DEV), solver, "scaled", workers=2)
        assert on_dev.device.type == DEV
        # pooling and distances on the device may differ in the last bit: compare energies
        assert torch.allclose(e.evaluate(on_dev.cpu()), e.evaluate(on_cpu), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("preset", ["reference", "paper"])
def test_puzzlemix_apply_on_cuda(preset):
    """Saliency, Algorithm 2's noise and the mixing on the device: invariants of the result."""
    x, y, _ = _photos()
    model = build_model("resnet8", 10).to(DEV)
    cfg = PuzzleMixConfig.from_preset(preset, num_classes=10, adv_p=0.5, mask_workers=2)
    mixer = PuzzleMix(cfg, mean=CIFAR_MEAN, std=CIFAR_STD)
    out = mixer.apply(model, x.to(DEV), y.to(DEV), generator=torch.Generator().manual_seed(1))
    assert out.x.device.type == DEV and out.x.shape == x.shape
    assert torch.isfinite(out.x).all()
    assert torch.allclose(out.y.sum(1), torch.ones(16, device=DEV), atol=1e-5)


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("model_name", ["preactresnet18", "wrn28_10"])
def test_models_step_on_cuda_with_amp_and_channels_last(model_name, amp):
    x, y, _ = _photos(8)
    model = build_model(model_name, 10).to(DEV).to(memory_format=torch.channels_last)
    xs = x.to(DEV).contiguous(memory_format=torch.channels_last)
    with torch.autocast(DEV, dtype=torch.float16 if DEV == "cuda" else torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(model(xs), y.to(DEV))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("method", ["vanilla", "puzzlemix", "manifold_mixup", "comixup"])
def test_a_run_trains_on_cuda(method, tmp_path):
    cfg = TrainConfig(
        method=method, device=DEV, train_examples=200, test_examples=100, batch_size=50,
        epochs=2, lr=0.05, progress=False,
    )  # fmt: skip
    res = run(cfg, tmp_path / method)
    assert len(res["train_loss"]) == 2 and all(v == v for v in res["train_loss"])
    assert res["train_loss"][1] < res["train_loss"][0]
