"""The Puzzle Mix mixer: a config (dataclass, presets ``reference`` / ``paper``) and an object
constructed once and called on a batch, in the manner of timm's ``Mixup``.

Pipeline per mini-batch (Section 3, Eqs. 2, 4, 5): draw grid g, partner permutation and lambda;
pool the saliency to g x g; build the mask energy (Eq. 4) and solve it (swap / binary / exact);
optionally add the adversarial noise (Algorithm 2); transport both inputs (Eq. 5, Algorithm 1);
compose (Eq. 2) and weight the labels by mean(z).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._checks import check_choice, check_positive_int, check_saliency
from ._random import draw_lambda, numpy_rng
from .mask.energy import GridEnergy, boundary_distances, puzzle_energy
from .mask.exact import solve_exact
from .mask.swap import solve_swap
from .mixing import compose, mix_targets, to_soft_targets, upsample_mask
from .pairing import make_pairing
from .parallel import POOLS
from .protocol import Mixer, MixResult, StageClock, lap_stage, timed_result
from .puzzlemix_config import SOLVERS, PuzzleMixConfig
from .saliency import SaliencyResult, compute_saliency, draw_grid_size, pool_saliency
from .transport import (
    TransportPlan,
    apply_plan,
    cached_grid_cost_matrix,
    saliency_transport,
)


@dataclass(frozen=True)
class AdversarialNoise:
    """Algorithm 2 output for one batch: noise (B, C, H, W) in pixel space; nu_self, nu_partner
    (B,) bool: whether pair i's own input gets noise and whether its partner input does.
    ``partner_noise`` (B, C, H, W): the noise of pair i's partner input when it was drawn per
    pair (``adv_draw="pair"``); None: the partner takes its own example's ``noise[perm]``."""

    noise: torch.Tensor
    nu_self: torch.Tensor
    nu_partner: torch.Tensor
    partner_noise: torch.Tensor | None = None


@dataclass(frozen=True)
class Prepared:
    """What :meth:`PuzzleMix.prepare` computes from the model: saliency (B, H, W), the
    adversarial noise (or None), the clean loss and logits of the saliency pass.  With
    ``adv_draw="pair"`` and adv_p > 0 also the pairing ``perm`` (B,) the noise was drawn for
    and ``partner_saliency`` (B, H, W), each pair's partner input's saliency (at its own noisy
    point where its nu is 1); pass both to :meth:`PuzzleMix.mix`."""

    saliency: torch.Tensor
    adversarial: AdversarialNoise | None
    loss: torch.Tensor
    logits: torch.Tensor
    perm: torch.Tensor | None = None
    partner_saliency: torch.Tensor | None = None


@dataclass(frozen=True)
class PuzzleMixResult(MixResult):
    """A :class:`~puzzle_core.protocol.MixResult` with Puzzle Mix's details: mask (B, g, g) the
    weight of the example itself (ratio = mean(z)); lam; grid; the transport plans (or None);
    the mask energy; labels (B, g, g) the integer mask labels.  ``info`` holds mask, lam, grid
    and labels in the shape every mixer's result has."""

    mask: torch.Tensor | None = None
    lam: float = 0.0
    grid: int = 0
    plan_self: TransportPlan | None = None
    plan_partner: TransportPlan | None = None
    energy: GridEnergy | None = None
    labels: torch.Tensor | None = None


def solve_mask(
    energy: GridEnergy,
    solver: str,
    quantize: str = "scaled",
    workers: int = 1,
    pool: str = "thread",
) -> torch.Tensor:
    """Dispatch to a mask solver -> integer labels (B, g, g); ``workers`` threads or processes
    (``pool``) share the batch's independent problems."""
    check_choice("solver", solver, SOLVERS)
    check_positive_int("workers", workers, 1)
    check_choice("pool", pool, POOLS)
    if solver == "swap":
        return solve_swap(energy, quantize, workers, pool)
    if solver == "binary" and energy.n_labels != 2:
        raise ValueError(f"solver='binary' needs 2 labels, got {energy.n_labels}")
    return solve_exact(energy, workers, pool)


class PuzzleMix(Mixer):
    """Puzzle Mix as a batch transform.

    >>> mixer = PuzzleMix(PuzzleMixConfig(num_classes=10), mean=MEAN, std=STD)
    >>> prep = mixer.prepare(model, x, y)              # saliency (+ noise, + clean gradient)
    >>> x_mix, y_mix = mixer(x, y, saliency=prep.saliency, adversarial=prep.adversarial)

    ``mean``/``std`` (per channel) map x to pixel space for the data term and the adversarial
    clamp; leave them None when x is already in [0, 1].  A :class:`~puzzle_core.protocol.Mixer`:
    ``mix`` / ``__call__`` check their inputs like every mixer's, and :meth:`apply` runs
    :meth:`prepare` (saliency, Algorithm 2's noise, the clean regulariser) before mixing.
    """

    name = "puzzlemix"
    saliency = "input_gradient"  # what the training loop must provide (see mixers.build)

    def __init__(
        self,
        config: PuzzleMixConfig | None = None,
        *,
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        self.config = config or PuzzleMixConfig()
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32)
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std must be given together")
        if self.std is not None and (self.std <= 0).any():
            raise ValueError("std must be > 0 per channel")

    def __repr__(self) -> str:
        return f"PuzzleMix({self.config!r})"

    @property
    def num_classes(self) -> int | None:
        """K of integer labels (the config's; ``mix(..., num_classes=K)`` overrides it)."""
        return self.config.num_classes

    # -- pixel space helpers -------------------------------------------------------------
    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = x.shape[1]
        if self.mean is None:
            return x.new_zeros((1, c, 1, 1), dtype=torch.float32), x.new_ones(
                (1, c, 1, 1), dtype=torch.float32
            )
        if self.mean.numel() not in (1, c):
            raise ValueError(f"mean/std have {self.mean.numel()} channels, x has {c}")
        shape = (1, -1, 1, 1)
        return (
            self.mean.to(x.device).reshape(shape),
            self.std.to(x.device).reshape(shape),  # type: ignore[union-attr]
        )

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x.float() * std + mean

    def from_pixels(self, x_pix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        mean, std = self._stats(x_pix)
        return ((x_pix - mean) / std).to(dtype)

    # -- Algorithm 2 + saliency ----------------------------------------------------------
    def prepare(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        num_classes: int | None = None,
    ) -> Prepared:
        """Saliency from one batched backward pass; with adv_p > 0 also the stochastic
        adversarial noise of Algorithm 2 from the *same* gradient (random start kappa ~
        U(-eps, eps) clamped to the image range, kappa <- clip(kappa + tau sign(g)), scaled by
        delta ~ U(0, 1) unless "fgsm"); with clean_lam > 0 the clean gradient is accumulated into
        the parameters' .grad (do not zero it before the mixed loss's backward)."""
        cfg = self.config
        self._check_model_batch(x, y, generator, num_classes)
        if cfg.adv_p > 0 and cfg.adv_draw == "pair":
            return self._prepare_per_pair(model, x, y, loss_fn, generator, num_classes)
        b = x.shape[0]
        adv = None
        x_in = x
        kappa = None
        if cfg.adv_p > 0:
            rng = numpy_rng(generator)  # the reference: nu once per mini-batch
            nu_self = torch.from_numpy(rng.random(1) < cfg.adv_p)
            if cfg.adv_variant == "nu0=nu1":
                nu_partner = nu_self.clone()
            else:
                nu_partner = torch.from_numpy(rng.random(1) < cfg.adv_p)
            nu_self, nu_partner = nu_self.expand(b).to(x.device), nu_partner.expand(b).to(x.device)
            if bool(nu_self.any() or nu_partner.any()):
                x_pix = self.to_pixels(x)
                kappa = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device)
                kappa = kappa * cfg.adv_eps
                x_noisy = torch.clamp(x_pix + kappa, 0, 1)
                kappa = x_noisy - x_pix
                x_in = self.from_pixels(x_noisy, x.dtype)
                adv = (nu_self, nu_partner)
        res = self._saliency_pass(model, x_in, y, loss_fn, num_classes)
        adversarial = None
        if adv is not None and kappa is not None:
            kappa = torch.clamp(
                kappa + cfg.adv_step * res.input_grad.sign(), -cfg.adv_eps, cfg.adv_eps
            )
            if cfg.adv_variant == "fgsm":
                delta = torch.ones(b, 1, 1, 1)
            else:
                delta = torch.rand(1, generator=generator).reshape(-1, 1, 1, 1).expand(b, 1, 1, 1)
            adversarial = AdversarialNoise(kappa * delta.to(x.device), adv[0], adv[1])
        return Prepared(res.saliency, adversarial, res.loss, res.logits)

    def _saliency_pass(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
        num_classes: int | None,
        loss_rows: int | None = None,
    ) -> SaliencyResult:
        """:func:`compute_saliency` with this config's norm, BN mode (train when the clean
        regulariser is on, as the reference) and clean weight."""
        cfg = self.config
        return compute_saliency(
            model,
            x,
            y,
            loss_fn,
            norm=cfg.saliency_norm,
            mode="train" if cfg.clean_lam > 0 else "eval",
            clean_weight=cfg.clean_weight(num_classes),
            loss_rows=loss_rows,
        )

    def _prepare_per_pair(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
        generator: torch.Generator | None,
        num_classes: int | None,
    ) -> Prepared:
        """Algorithm 2 as the text writes it, for every pair (x0, x1) = (x[i], x[perm[i]]):
        nu_0, nu_1 ~ B(1, p) per pair (one draw for both with "nu0=nu1"); kappa_k ~ U(-eps, eps)
        added only to the inputs whose nu_k = 1; the gradient of each input at its own point
        (the clean batch and the noisy copies in one pass, the noisy rows giving input
        gradients only); kappa_k <- clip(kappa_k + tau sign(grad), -eps, eps); one
        delta ~ U(0, 1) per pair (1 for "fgsm"); x_k <- x_k,clean + delta kappa_k (clamped to
        the image range, as the reference).  The pairing is drawn here, before the saliency
        it needs; the mask and transport use each pair's own saliency maps."""
        cfg = self.config
        b, dev = x.shape[0], x.device
        perm = make_pairing(cfg.pairing, b, images=x, generator=generator, device=dev).long()
        rng = numpy_rng(generator)
        nu0 = torch.from_numpy(rng.random(b) < cfg.adv_p).to(dev)
        nu1 = nu0.clone() if cfg.adv_variant == "nu0=nu1" else None
        if nu1 is None:
            nu1 = torch.from_numpy(rng.random(b) < cfg.adv_p).to(dev)
        x_pix = self.to_pixels(x)
        starts = []  # (pixels, kappa) of the noisy inputs: the pairs' own, then their partners'
        for nu, pix in ((nu0, x_pix), (nu1, x_pix[perm])):
            kappa = (torch.rand(pix.shape, generator=generator) * 2 - 1).to(dev) * cfg.adv_eps
            noisy = torch.clamp(pix[nu] + kappa[nu], 0, 1)
            starts.append((noisy, noisy - pix[nu]))
        n0 = int(nu0.sum())
        x_ext = torch.cat([x] + [self.from_pixels(noisy, x.dtype) for noisy, _ in starts])
        y_ext = torch.cat([y, y[nu0], y[perm][nu1]])
        res = self._saliency_pass(model, x_ext, y_ext, loss_fn, num_classes, loss_rows=b)
        sal, grad = res.saliency, res.input_grad
        sal_self, sal_partner = sal[:b].clone(), sal[:b][perm].clone()
        sal_self[nu0], sal_partner[nu1] = sal[b : b + n0], sal[b + n0 :]
        if cfg.adv_variant == "fgsm":
            delta = torch.ones(b, 1, 1, 1, device=dev)
        else:
            delta = torch.rand(b, generator=generator).reshape(-1, 1, 1, 1).to(dev)
        noises = []
        grads = (grad[b : b + n0], grad[b + n0 :])
        for (_, kappa), nu, g in zip(starts, (nu0, nu1), grads, strict=True):
            step = torch.clamp(kappa + cfg.adv_step * g.sign(), -cfg.adv_eps, cfg.adv_eps)
            noise = torch.zeros_like(x_pix)
            noise[nu] = step * delta[nu]
            noises.append(noise)
        adversarial = AdversarialNoise(noises[0], nu0, nu1, partner_noise=noises[1])
        return Prepared(sal_self, adversarial, res.loss, res.logits, perm, sal_partner)

    def _apply_in_stages(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
        timer: StageClock | None,
    ) -> Callable[[], PuzzleMixResult]:
        """:meth:`apply`'s two stages: :meth:`prepare` now (saliency, Algorithm 2's noise, the
        clean gradient), :meth:`mix` with the noise when the returned function is called (CPU
        solvers: another thread may run it); ``timer`` gets "saliency", "mask", "transport",
        "compose"."""
        prep = self.prepare(model, x, y, generator=generator)
        lap_stage(timer, "saliency")

        def mix() -> PuzzleMixResult:
            out = self.mix(
                x,
                y,
                prep.saliency,
                generator=generator,
                adversarial=prep.adversarial,
                perm=prep.perm,
                partner_saliency=prep.partner_saliency,
            )
            return timed_result(out, timer)

        return mix

    @property
    def accumulates_gradients(self) -> bool:  # type: ignore[override]
        """True with the clean-input regulariser (its gradient is added in :meth:`prepare`)."""
        return self.config.clean_lam > 0

    # -- the mixing ----------------------------------------------------------------------
    def _mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        saliency: torch.Tensor,
        *,
        generator: torch.Generator | None,
        perm: torch.Tensor | None = None,
        lam: float | None = None,
        grid: int | None = None,
        adversarial: AdversarialNoise | None = None,
        partner_saliency: torch.Tensor | None = None,
        num_classes: int | None = None,
        timed: bool = False,
    ) -> PuzzleMixResult:
        """Mix a batch (through ``mix``).  x (B, C, H, W); y (B,) int or (B, K) soft; saliency
        (B, H, W) >= 0, required.  perm (B,) / lam in [0, 1] / grid (>= 2, dividing H and W)
        override the random draws (grid side, then permutation, then lambda ~ Beta(alpha,
        alpha), from ``generator``).  ``partner_saliency`` (B, H, W), with ``perm``: each
        pair's partner input's own map (Algorithm 2 per pair) instead of saliency[perm]."""
        cfg = self.config
        b, _, h, w = x.shape
        targets = to_soft_targets(y, num_classes or cfg.num_classes, b)
        rng = numpy_rng(generator)
        if grid is None:
            grid = draw_grid_size(cfg.grid_sizes, rng)
        check_positive_int("grid", grid, 2)
        if h % grid or w % grid:
            raise ValueError(f"grid={grid} (from grid_sizes) must divide the image size {h}x{w}")
        per_pair = partner_saliency is not None or (
            adversarial is not None and adversarial.partner_noise is not None
        )
        if per_pair and perm is None:
            raise ValueError(
                "partner_saliency / adversarial.partner_noise belong to one pairing: pass the "
                "perm they were drawn for (PuzzleMix.prepare(...).perm)"
            )
        if perm is None:
            perm = make_pairing(cfg.pairing, b, images=x, generator=generator, device=x.device)
        perm = perm.to(x.device).long()
        if lam is None:
            lam = draw_lambda(cfg.alpha, rng)
        if adversarial is not None:
            for name in ("noise", "partner_noise"):
                t = getattr(adversarial, name)
                if t is not None and t.shape != x.shape:
                    raise ValueError(f"adversarial.{name} must have shape {tuple(x.shape)}")
        if partner_saliency is not None:
            check_saliency(partner_saliency, x, "partner_saliency")
        timings: dict[str, float] = {}
        sync = torch.cuda.synchronize if (timed and x.is_cuda) else (lambda: None)
        t0 = time.perf_counter()
        with torch.autocast(x.device.type, enabled=False):
            sal = saliency.float()
            sal_part = None if partner_saliency is None else partner_saliency.float()
            x_pix = self.to_pixels(x)
            s_grid = pool_saliency(sal, grid)
            d_v, d_h = boundary_distances(x_pix, x_pix[perm], grid, cfg.neigh_size)
            beta, gamma, eta, eps = cfg.coefficients(grid)
            energy = puzzle_energy(
                s_grid,
                s_grid[perm] if sal_part is None else pool_saliency(sal_part, grid),
                d_v,
                d_h,
                torch.full((b,), lam, dtype=torch.float64, device=x.device),
                n_labels=cfg.n_labels,
                beta=beta,
                gamma=gamma,
                eta=eta,
                phi=cfg.phi,
                prior_eps=eps,
            )
            labels = solve_mask(
                energy, cfg.solver, cfg.quantize, cfg.mask_workers, cfg.mask_pool
            ).to(x.device)
            mask = labels.float() / (cfg.n_labels - 1)
            sync()
            t1 = time.perf_counter()
            timings["mask"] = t1 - t0

            x_self, x_partner = x, x[perm]
            if adversarial is not None:
                x_self, x_partner = self._add_noise(x_self, x_partner, perm, adversarial)
            plan_self = plan_partner = None
            if cfg.transport:
                x_self, x_partner, plan_self, plan_partner = self._transport(
                    x_self, x_partner, sal, sal_part, mask, perm, grid
                )
            sync()
            t2 = time.perf_counter()
            timings["transport"] = t2 - t1
            mixed = compose(x_self, x_partner, mask)
            ratio = mask.mean((1, 2))
            y_mix = mix_targets(targets.to(x.device), perm, ratio)
            sync()
            timings["compose"] = time.perf_counter() - t2
        info = {"mask": mask, "lam": lam, "grid": grid, "labels": labels}
        return PuzzleMixResult(
            mixed,
            y_mix,
            perm,
            ratio,
            info,
            timings,
            mask=mask,
            lam=lam,
            grid=grid,
            plan_self=plan_self,
            plan_partner=plan_partner,
            energy=energy,
            labels=labels,
        )

    def _add_noise(
        self,
        x_self: torch.Tensor,
        x_partner: torch.Tensor,
        perm: torch.Tensor,
        adv: AdversarialNoise,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x <- clamp(x + noise, 0, 1) in pixel space for the roles whose nu is 1 (Alg. 2)."""
        noise = adv.noise.to(x_self.device).float()
        noisy_self = self.from_pixels(
            torch.clamp(self.to_pixels(x_self) + noise, 0, 1), x_self.dtype
        )
        part = noise[perm] if adv.partner_noise is None else adv.partner_noise.to(noise)
        noisy_part = self.from_pixels(
            torch.clamp(self.to_pixels(x_partner) + part, 0, 1), x_partner.dtype
        )
        ns = adv.nu_self.to(x_self.device).reshape(-1, 1, 1, 1)
        npart = adv.nu_partner.to(x_self.device).reshape(-1, 1, 1, 1)
        return torch.where(ns, noisy_self, x_self), torch.where(npart, noisy_part, x_partner)

    def transport_grid(self, grid: int, h: int, w: int) -> tuple[int, int]:
        """Grid of the transport (reference ``t_size`` logic: a finer grid of t_size-pixel cells
        when t_size is smaller than the mask cell, else the mask grid)."""
        t = self.config.t_size
        bh, bw = h // grid, w // grid
        if t == -1 or t >= min(bh, bw):
            return grid, grid
        if bh % t or bw % t:
            raise ValueError(f"t_size={t} must divide the mask cell size {bh}x{bw}")
        return h // t, w // t

    def _transport(
        self,
        x_self: torch.Tensor,
        x_partner: torch.Tensor,
        sal: torch.Tensor,
        sal_partner: torch.Tensor | None,
        mask: torch.Tensor,
        perm: torch.Tensor,
        grid: int,
    ) -> tuple[torch.Tensor, torch.Tensor, TransportPlan, TransportPlan]:
        cfg = self.config
        _, _, h, w = x_self.shape
        th, tw = self.transport_grid(grid, h, w)
        mask_t = upsample_mask(mask, th, tw)[:, 0]
        s_t = pool_saliency(sal, (th, tw)).float()
        cmat = cached_grid_cost_matrix(th, tw, str(x_self.device), torch.float32)
        if cfg.transport_conflict == "reference":
            kwargs = dict(
                conflict="reference", penalty=1.0, max_iter=cfg.transport_max_iter or max(th, tw)
            )
        else:
            kwargs = dict(conflict="paper", penalty=float("inf"), max_iter=cfg.transport_max_iter)
        shown = torch.cat([mask_t, 1 - mask_t])  # self: z, partner: 1 - z (Eq. 5)
        if cfg.transport_mask == "binary":
            shown = (shown > 0).float()
        s_part = s_t[perm] if sal_partner is None else pool_saliency(sal_partner, (th, tw)).float()
        s_both = torch.cat([s_t, s_part])
        # both inputs' transports in one batched call (2B problems)
        plan = saliency_transport(
            s_both, shown, cfg.t_eps, cmat, workers=cfg.mask_workers, **kwargs
        )
        b = x_self.shape[0]
        p_self, p_part = (
            TransportPlan(plan.source[sl], plan.iterations[sl], plan.converged[sl])
            for sl in (slice(0, b), slice(b, 2 * b))
        )
        return (
            apply_plan(x_self, p_self.source, th, tw),
            apply_plan(x_partner, p_part.source, th, tw),
            p_self,
            p_part,
        )
