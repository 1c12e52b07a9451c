"""The configuration of Puzzle Mix: every option (dataclass), the presets ``reference`` (the
official code's choices, which produced the paper's tables) and ``paper`` (the equations as
printed), and the ablation switches of Tables 7 and 8."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_positive_int, check_unit_interval
from .pairing import PAIRINGS

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
      clean_lam, clean_weighting: clean-input regulariser; "reference" weight 2 clean_lam / K next
          to the BCE loss, "paper" weight clean_lam.
      The training loss is not an option of the mixer: it is the caller's ``criterion``
      (``Mixer.loss``; the run's ``TrainConfig.loss``: "ce" is the paper's Section 3 objective,
      "bce_softmax" the official code's for every method).
    Adversarial (Algorithm 2, Table 8)
      adv_p: probability p of nu; adv_eps, adv_step: epsilon and tau (pixel scale);
      adv_variant: "adv" (delta ~ U(0,1)), "fgsm" (delta = 1), "nu0=nu1" (one Bernoulli);
      adv_draw: "batch" (reference: nu once per mini-batch) or "pair" (paper: per pair).
    num_classes: needed when labels are integers.
    pairing: "random" (reference), or GuidedMixup's "greedy" / "exact" pairing on
        spectral-residual maps (GuidedMixup Table 8 "+pairing").
    Execution (no effect on the result)
      mask_workers: workers sharing the batch's independent problems: the swap masks and the
          transports per example, the exact min-cut per chunk of examples (README "Speed").
      mask_pool: "thread" or "process" for the masks (the transport always uses threads).
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
    clean_lam: float = 0.0
    clean_weighting: str = "reference"
    adv_p: float = 0.0
    adv_eps: float = 10 / 255
    adv_step: float = 12 / 255
    adv_variant: str = "adv"
    adv_draw: str = "batch"
    num_classes: int | None = None
    pairing: str = "random"
    mask_workers: int = 1
    mask_pool: str = "thread"
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
        check_positive_int("mask_workers", self.mask_workers, 1)
        check_choice("mask_pool", self.mask_pool, ("thread", "process"))

    @classmethod
    def from_preset(cls, name: str = "reference", **overrides: object) -> PuzzleMixConfig:
        """``reference``: the official code's numerics.  ``paper``: the text's choices (Def. 2/3
        phi, exact solver, transport to convergence on the mask grid with soft z, l2 saliency,
        lambda_clean unscaled, nu per pair as Algorithm 2).

        Eq. (4)'s coefficients: the paper prints no values for beta, gamma, eta; it normalises
        the down-sampled saliency to sum 1 "to use consistent hyperparameters across all the
        models and datasets" and draws the grid from {2, 4, 8, 16} per batch (Section 5).  With
        the unary total fixed at 1, grid-independent coefficients let the pairwise and prior
        sums (2 g (g - 1) edges, g^2 cells) outweigh it as g grows: the mask is constant for
        98-100 % of examples at g = 8 and 16 (README "Paper vs reference code").  The ``paper``
        preset therefore keeps the only published values (the official code's beta 1.2,
        gamma 0.5, eta 0.2) with their grid scaling (``scaling="reference"``);
        ``scaling="paper"`` is the literal reading, a named option."""
        check_choice("preset", name, PRESETS)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            hint = (
                " (the training loss is the caller's criterion / the run's TrainConfig.loss)"
                if "loss" in unknown
                else ""
            )
            raise ValueError(f"unknown Puzzle Mix option(s) {unknown}{hint}")
        base: dict[str, object] = {}
        if name == "paper":
            base = dict(
                phi="paper",
                solver="exact",
                quantize="scaled",
                t_size=-1,
                transport_conflict="paper",
                transport_mask="soft",
                saliency_norm="l2",
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
            beta_s = self.beta / grid / 16  # docs/reference-implementation.md §1b #2
            return beta_s, self.gamma * beta_s, self.eta / grid**2, 1e-8  # §1b #3, #4
        return self.beta, self.gamma, self.eta, 0.0

    def clean_weight(self, num_classes: int | None) -> float:
        """Weight of grad_theta loss(clean) (Section 5): paper lambda_clean; reference
        2 lambda_clean / K (docs/reference-implementation.md §1b #16)."""
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
