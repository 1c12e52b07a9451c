"""The Puzzle Mix mixer: a config (dataclass, presets ``reference`` / ``paper``) and an object
constructed once and called on a batch, in the manner of timm's ``Mixup``.

Pipeline per mini-batch (Section 3, Eqs. 2, 4, 5): draw grid g, partner permutation and lambda;
pool the saliency to g x g; build the mask energy (Eq. 4) and solve it (swap / binary / exact);
optionally add the adversarial noise (Algorithm 2); transport both inputs (Eq. 5, Algorithm 1);
compose (Eq. 2) and weight the labels by mean(z).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import (
    CheckedMixer,
    check_choice,
    check_positive_int,
    check_rank,
    check_unit_interval,
)
from ._random import draw_lambda, numpy_rng
from .mask.energy import GridEnergy, boundary_distances, puzzle_energy
from .mask.exact import solve_exact
from .mask.swap import solve_swap
from .mixing import compose, mix_targets, to_soft_targets, upsample_mask
from .pairing import PAIRINGS, make_pairing
from .saliency import compute_saliency, draw_grid_size, pool_saliency
from .transport import (
    TransportPlan,
    apply_plan,
    grid_cost_matrix,
    saliency_transport,
)

SOLVERS = ("swap", "exact", "binary")
PRESETS = ("reference", "paper")
ADV_VARIANTS = ("adv", "fgsm", "nu0=nu1")


@dataclass(frozen=True)
class PuzzleMixConfig:
    """Every option of Puzzle Mix.  Defaults = the ``reference`` preset (the official code's
    choices, which produced the paper's tables).  Each field that differs between the paper text
    and the code is a named option; see README "Paper vs reference code".

    Mixing distribution
      alpha: lambda ~ Beta(alpha, alpha) once per batch (alpha <= 0: lambda = 1).
      grid_sizes: mask grid side drawn uniformly per batch.
      n_labels: |L|, L = {t/m} (2 = binary, Table 7; 3 = paper).
    Mask energy (Eq. 4)
      beta, gamma, eta, neigh_size: coefficients and the pooling of the data term d_p.
      scaling: "reference" -> beta/(16 g), gamma * beta/(16 g), eta/g^2 with 1e-8 in the log;
               "paper" -> beta, gamma, eta as printed, no epsilon.
      phi: "reference" keeps the phi interaction in the edge weight; "paper" uses Def. 2 for
           binary labels and Def. 3 (modular phi^b') otherwise.
      solver: "swap" (gco alpha-beta swap, the paper), "binary" (one min-cut, n_labels = 2),
              "exact" (one Ishikawa min-cut per batch: the global optimum).
      quantize: for swap: "reference" (int32 at 1000 g^2, gco float mode) or "scaled".
    Transport (Eq. 5, Algorithm 1)
      transport: on/off (off = Table 7 "mask only"); t_eps = xi.
      t_size: transport cell size in pixels (reference CIFAR 4; -1 = the mask grid, paper).
      transport_conflict: "reference" (C . Pi, +1 penalty, g steps, partial plan, zero patches)
                          or "paper" (v = inf, until convergence -> a permutation).
      transport_mask: "binary" (1[z > 0], reference) or "soft" (z* in L, paper).
      transport_max_iter: override of the step count (None: g for reference, Prop. 5 cap for paper).
    Saliency / training
      saliency_norm: "rms" (reference) or "l2" (paper).
      loss: "bce_softmax" (reference) or "ce".
      clean_lam, clean_weighting: clean-input regulariser; "reference" weight 2 clean_lam / K next
          to the BCE loss, "paper" weight clean_lam.
    Adversarial (Algorithm 2, Table 8)
      adv_p: probability p of nu; adv_eps, adv_step: epsilon and tau (pixel scale);
      adv_variant: "adv" (delta ~ U(0,1)), "fgsm" (delta = 1), "nu0=nu1" (one Bernoulli);
      adv_draw: "batch" (reference: nu once per mini-batch) or "pair" (paper: per pair).
    num_classes: needed when labels are integers.
    pairing: "random" (reference), or GuidedMixup's "greedy" / "exact" pairing on
        spectral-residual maps (GuidedMixup Table 8 "+pairing").
    """

    alpha: float = 1.0
    grid_sizes: tuple[int, ...] = (2, 4, 8, 16)
    n_labels: int = 3
    beta: float = 1.2
    gamma: float = 0.5
    eta: float = 0.2
    neigh_size: int = 4
    scaling: str = "reference"
    phi: str = "reference"
    solver: str = "swap"
    quantize: str = "reference"
    transport: bool = True
    t_eps: float = 0.8
    t_size: int = 4
    transport_conflict: str = "reference"
    transport_mask: str = "binary"
    transport_max_iter: int | None = None
    saliency_norm: str = "rms"
    loss: str = "bce_softmax"
    clean_lam: float = 0.0
    clean_weighting: str = "reference"
    adv_p: float = 0.0
    adv_eps: float = 10 / 255
    adv_step: float = 12 / 255
    adv_variant: str = "adv"
    adv_draw: str = "batch"
    num_classes: int | None = None
    pairing: str = "random"
    preset: str = "reference"

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid_sizes", tuple(self.grid_sizes))
        if not self.grid_sizes:
            raise ValueError("grid_sizes must name at least one grid side")
        for g in self.grid_sizes:
            check_positive_int("grid_sizes", g, 2)
        check_positive_int("n_labels", self.n_labels, 2)
        check_positive_int("neigh_size", self.neigh_size, 1)
        for name in ("beta", "gamma", "eta", "t_eps", "clean_lam", "adv_eps", "adv_step"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        check_unit_interval("adv_p", self.adv_p)
        check_choice("scaling", self.scaling, ("reference", "paper"))
        check_choice("phi", self.phi, ("reference", "paper"))
        check_choice("solver", self.solver, SOLVERS)
        check_choice("quantize", self.quantize, ("reference", "scaled"))
        check_choice("transport_conflict", self.transport_conflict, ("reference", "paper"))
        check_choice("transport_mask", self.transport_mask, ("binary", "soft"))
        check_choice("saliency_norm", self.saliency_norm, ("rms", "l2"))
        check_choice("loss", self.loss, ("bce_softmax", "ce"))
        check_choice("clean_weighting", self.clean_weighting, ("reference", "paper"))
        check_choice("adv_variant", self.adv_variant, ADV_VARIANTS)
        check_choice("adv_draw", self.adv_draw, ("batch", "pair"))
        check_choice("preset", self.preset, (*PRESETS, "custom"))
        check_choice("pairing", self.pairing, PAIRINGS)
        if self.solver == "binary" and self.n_labels != 2:
            raise ValueError(f"solver='binary' needs n_labels=2, got n_labels={self.n_labels}")
        if self.t_size != -1:
            check_positive_int("t_size", self.t_size, 1)
        if self.transport_max_iter is not None:
            check_positive_int("transport_max_iter", self.transport_max_iter, 1)
        if self.num_classes is not None:
            check_positive_int("num_classes", self.num_classes, 1)

    @classmethod
    def from_preset(cls, name: str = "reference", **overrides: object) -> PuzzleMixConfig:
        """``reference``: the official code's numerics.  ``paper``: the equations as printed
        (Eq. 4 coefficients unscaled, Def. 2/3 phi, exact solver, transport to convergence on the
        mask grid with soft z, l2 saliency, CE loss, nu per pair).  The paper's Eq. (4) has
        grid-independent coefficients; the ``paper`` preset's beta/gamma/eta are the reference
        values' effective size at g = 4 (1.2/64, 0.5 * 1.2/64, 0.2/16)."""
        check_choice("preset", name, PRESETS)
        base: dict[str, object] = {}
        if name == "paper":
            base = dict(
                beta=1.2 / 64,
                gamma=0.5 * 1.2 / 64,
                eta=0.2 / 16,
                scaling="paper",
                phi="paper",
                solver="exact",
                quantize="scaled",
                t_size=-1,
                transport_conflict="paper",
                transport_mask="soft",
                saliency_norm="l2",
                loss="ce",
                clean_weighting="paper",
                adv_draw="pair",
            )
        base.update(overrides)
        base["preset"] = name if not overrides else base.get("preset", name)
        return cls(**base)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> PuzzleMixConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def coefficients(self, grid: int) -> tuple[float, float, float, float]:
        """(beta, gamma, eta, prior_eps) as they enter Eq. (4) at grid side ``grid``; gamma here
        multiplies d_p directly."""
        if self.scaling == "reference":
            beta_s = self.beta / grid / 16  # notes 1b #2
            return beta_s, self.gamma * beta_s, self.eta / grid**2, 1e-8  # 1b #3, #4
        return self.beta, self.gamma, self.eta, 0.0

    def clean_weight(self, num_classes: int | None) -> float:
        """Weight of grad_theta loss(clean) (Section 5): paper lambda_clean; reference
        2 lambda_clean / K (notes 1b #16)."""
        if self.clean_lam == 0:
            return 0.0
        if self.clean_weighting == "paper":
            return self.clean_lam
        k = num_classes or self.num_classes
        if k is None:
            raise ValueError("num_classes is required for clean_weighting='reference'")
        return 2.0 * self.clean_lam / k


# Table 7 / Table 8 switches, applied on top of a preset.
ABLATIONS: dict[str, dict[str, object]] = {
    "full": {},
    "binary": {"n_labels": 2},
    "mask_only": {"transport": False},
    "adv": {"adv_p": 0.1, "adv_variant": "adv"},
    "fgsm": {"adv_p": 0.1, "adv_variant": "fgsm"},
    "nu0=nu1": {"adv_p": 0.1, "adv_variant": "nu0=nu1"},
}


@dataclass(frozen=True)
class AdversarialNoise:
    """Algorithm 2 output for one batch: noise (B, C, H, W) in pixel space; nu_self, nu_partner
    (B,) bool: whether example i gets the noise in the self role (x1) and whether its partner
    gets it in the partner role (x0)."""

    noise: torch.Tensor
    nu_self: torch.Tensor
    nu_partner: torch.Tensor


@dataclass(frozen=True)
class Prepared:
    """What :meth:`PuzzleMix.prepare` computes from the model: saliency (B, H, W), the
    adversarial noise (or None), the clean loss and logits of the saliency pass."""

    saliency: torch.Tensor
    adversarial: AdversarialNoise | None
    loss: torch.Tensor
    logits: torch.Tensor


@dataclass(frozen=True)
class MixOutput:
    """x (B, C, H, W) mixed inputs; y (B, K) soft labels; mask (B, g, g) weight of the example
    itself; ratio (B,) = mean(z); perm (B,) partner indices; lam; grid; plans (or None);
    energy; labels (B, g, g) integer labels; timings in seconds per stage."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    ratio: torch.Tensor
    perm: torch.Tensor
    lam: float
    grid: int
    plan_self: TransportPlan | None
    plan_partner: TransportPlan | None
    energy: GridEnergy
    labels: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def info(self) -> dict[str, object]:
        """The method-specific details in the shape every mixer's result has (``mixers``)."""
        return {"mask": self.mask, "lam": self.lam, "grid": self.grid, "labels": self.labels}


def solve_mask(energy: GridEnergy, solver: str, quantize: str = "scaled") -> torch.Tensor:
    """Dispatch to a mask solver -> integer labels (B, g, g)."""
    check_choice("solver", solver, SOLVERS)
    if solver == "swap":
        return solve_swap(energy, quantize)
    if solver == "binary" and energy.n_labels != 2:
        raise ValueError(f"solver='binary' needs 2 labels, got {energy.n_labels}")
    return solve_exact(energy)


class PuzzleMix(CheckedMixer):
    """Puzzle Mix as a batch transform.

    >>> mixer = PuzzleMix(PuzzleMixConfig(num_classes=10), mean=MEAN, std=STD)
    >>> prep = mixer.prepare(model, x, y)              # saliency (+ noise, + clean gradient)
    >>> x_mix, y_mix = mixer(x, y, saliency=prep.saliency, adversarial=prep.adversarial)

    ``mean``/``std`` (per channel) map x to pixel space for the data term and the adversarial
    clamp; leave them None when x is already in [0, 1].  ``mix`` / ``__call__`` check their
    inputs like every mixer's (:class:`~puzzle_core._checks.CheckedMixer`).
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
        check_rank("x", x, 4, "(B, C, H, W)")
        b = x.shape[0]
        adv = None
        x_in = x
        kappa = None
        if cfg.adv_p > 0:
            rng = numpy_rng(generator)
            draws = 1 if cfg.adv_draw == "batch" else b
            nu_self = torch.from_numpy(rng.random(draws) < cfg.adv_p)
            if cfg.adv_variant == "nu0=nu1":
                nu_partner = nu_self.clone()
            else:
                nu_partner = torch.from_numpy(rng.random(draws) < cfg.adv_p)
            nu_self, nu_partner = nu_self.expand(b).to(x.device), nu_partner.expand(b).to(x.device)
            if bool(nu_self.any() or nu_partner.any()):
                x_pix = self.to_pixels(x)
                kappa = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device)
                kappa = kappa * cfg.adv_eps
                x_noisy = torch.clamp(x_pix + kappa, 0, 1)
                kappa = x_noisy - x_pix
                x_in = self.from_pixels(x_noisy, x.dtype)
                adv = (nu_self, nu_partner)
        mode = "train" if cfg.clean_lam > 0 else "eval"
        res = compute_saliency(
            model,
            x_in,
            y,
            loss_fn,
            norm=cfg.saliency_norm,
            mode=mode,
            clean_weight=cfg.clean_weight(num_classes),
        )
        adversarial = None
        if adv is not None and kappa is not None:
            kappa = torch.clamp(
                kappa + cfg.adv_step * res.input_grad.sign(), -cfg.adv_eps, cfg.adv_eps
            )
            if cfg.adv_variant == "fgsm":
                delta = torch.ones(b, 1, 1, 1)
            else:
                n_delta = 1 if cfg.adv_draw == "batch" else b
                delta = (
                    torch.rand(n_delta, generator=generator).reshape(-1, 1, 1, 1).expand(b, 1, 1, 1)
                )
            adversarial = AdversarialNoise(kappa * delta.to(x.device), adv[0], adv[1])
        return Prepared(res.saliency, adversarial, res.loss, res.logits)

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
        num_classes: int | None = None,
        timed: bool = False,
    ) -> MixOutput:
        """Mix a batch (through ``mix``).  x (B, C, H, W); y (B,) int or (B, K) soft; saliency
        (B, H, W) >= 0, required.  perm (B,) / lam in [0, 1] / grid (>= 2, dividing H and W)
        override the random draws (grid side, then permutation, then lambda ~ Beta(alpha,
        alpha), from ``generator``)."""
        cfg = self.config
        b, _, h, w = x.shape
        targets = to_soft_targets(y, num_classes or cfg.num_classes, b)
        rng = numpy_rng(generator)
        if grid is None:
            grid = draw_grid_size(cfg.grid_sizes, rng)
        check_positive_int("grid", grid, 2)
        if h % grid or w % grid:
            raise ValueError(f"grid={grid} (from grid_sizes) must divide the image size {h}x{w}")
        if perm is None:
            perm = make_pairing(cfg.pairing, b, images=x, generator=generator, device=x.device)
        perm = perm.to(x.device).long()
        if lam is None:
            lam = draw_lambda(cfg.alpha, rng)
        if adversarial is not None and adversarial.noise.shape != x.shape:
            raise ValueError(f"adversarial.noise must have shape {tuple(x.shape)}")
        timings: dict[str, float] = {}
        sync = torch.cuda.synchronize if (timed and x.is_cuda) else (lambda: None)
        t0 = time.perf_counter()
        with torch.autocast(x.device.type, enabled=False):
            sal = saliency.float()
            x_pix = self.to_pixels(x)
            s_grid = pool_saliency(sal, grid)
            d_v, d_h = boundary_distances(x_pix, x_pix[perm], grid, cfg.neigh_size)
            beta, gamma, eta, eps = cfg.coefficients(grid)
            energy = puzzle_energy(
                s_grid,
                s_grid[perm],
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
            labels = solve_mask(energy, cfg.solver, cfg.quantize).to(x.device)
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
                    x_self, x_partner, sal, mask, perm, grid
                )
            sync()
            t2 = time.perf_counter()
            timings["transport"] = t2 - t1
            mixed = compose(x_self, x_partner, mask)
            ratio = mask.mean((1, 2))
            y_mix = mix_targets(targets.to(x.device), perm, ratio)
            sync()
            timings["compose"] = time.perf_counter() - t2
        return MixOutput(
            mixed,
            y_mix,
            mask,
            ratio,
            perm,
            lam,
            grid,
            plan_self,
            plan_partner,
            energy,
            labels,
            timings,
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
        noisy_part = self.from_pixels(
            torch.clamp(self.to_pixels(x_partner) + noise[perm], 0, 1), x_partner.dtype
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
        mask: torch.Tensor,
        perm: torch.Tensor,
        grid: int,
    ) -> tuple[torch.Tensor, torch.Tensor, TransportPlan, TransportPlan]:
        cfg = self.config
        _, _, h, w = x_self.shape
        th, tw = self.transport_grid(grid, h, w)
        mask_t = upsample_mask(mask, th, tw)[:, 0]
        s_t = pool_saliency(sal, (th, tw)).float()
        cmat = grid_cost_matrix(th, tw, x_self.device, torch.float32)
        if cfg.transport_conflict == "reference":
            kwargs = dict(
                conflict="reference", penalty=1.0, max_iter=cfg.transport_max_iter or max(th, tw)
            )
        else:
            kwargs = dict(conflict="paper", penalty=float("inf"), max_iter=cfg.transport_max_iter)
        shown = torch.cat([mask_t, 1 - mask_t])  # self: z, partner: 1 - z (Eq. 5)
        if cfg.transport_mask == "binary":
            shown = (shown > 0).float()
        s_both = torch.cat([s_t, s_t[perm]])
        # both inputs' transports in one batched call (2B problems)
        plan = saliency_transport(s_both, shown, cfg.t_eps, cmat, **kwargs)
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
