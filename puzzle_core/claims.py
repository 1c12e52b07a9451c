"""The claims of the Puzzle Mix paper's text about its results, as checkable comparisons.

Every claim quotes the sentence of the paper (Kim, Choo, Song, ICML 2020; the text in the shared
papers folder, line numbers of that file) it comes from and names the table or figure.  A claim
says that row ``better`` has a lower error (or, for Figure 2's statistics, a higher value) than
row ``worse``; ``worse = BEST_BASELINE`` means the best of the baselines (vanilla, Input mixup,
Manifold mixup, CutMix, AugMix) on that metric, chosen in each source separately: the paper's
best baseline in the paper's numbers, ours in ours (the hardest comparison our numbers allow).
The paper's Manifold-mixup-dagger rows (numbers copied from the Manifold mixup paper) are not
baselines here, as they are not in any margin the text states.

``origin = "ours"`` marks comparisons the paper does not make (measurements only this project
has, e.g. object survival on ground-truth masks); they are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass

BASELINES = ("vanilla", "input_mixup", "manifold_mixup", "cutmix", "augmix")
BEST_BASELINE = "best baseline"


@dataclass(frozen=True)
class Claim:
    """``better`` beats ``worse`` on ``metric`` in ``table`` (Table 7 lists Table 2's full model
    as a row of its own: the same run, shared by address)."""

    id: str
    source: str  # "Table 2", "Figure 2 (c)", ...
    quote: str
    table: str
    metric: str
    better: str
    worse: str
    origin: str = "paper"

    @property
    def lower_is_better(self) -> bool:
        return self.metric.endswith("_err") or self.metric in ("loss", "label_mismatch")

    def text(self) -> str:
        word = "lower" if self.lower_is_better else "higher"
        return f"{self.better} has {word} {self.metric} than {self.worse}"


_Q_T2 = (
    "With WRN28-10, Puzzle Mix improves Top-1 test error over the best performing baseline by "
    "1.45%, and Puzzle Mix (half) outperforms by 1.17%. (l.974-977)"
)
_Q_T2_ADV = (
    "Puzzle Mix (adv) improves FGSM error rate over 8.41% than AugMix while achieving 1.39% "
    "lower Top-1 error rate than Manifold mixup, which had the best Top-1 score among "
    "baselines. (l.977-980)"
)
_Q_T23 = (
    "We observe that Puzzle Mix outperforms other mixup baselines in generalization and "
    "adversarial robustness with WRN28-10 (Table 2) and PreActResNet18 (Table 3). (l.972-974) "
    "[...] We observe similar results with PreActResNet18. (l.980-981)"
)
_Q_T3_ADV = (
    "Puzzle Mix (adv) reduces the Top-1 error rate by 1.14% and the FGSM error rate by 12.98% "
    "over baselines. (l.981-983)"
)
_Q_T4 = (
    "Puzzle Mix trained with the same number of epochs achieves 36.52% in Top-1 test error, "
    "5.47% lower than the strongest baseline, and the model trained with same network "
    "evaluations (half) outperforms the best baseline by 4.35%. (l.1075-1078)"
)
_Q_T4_ADV = (
    "Puzzle Mix trained with stochastic adversarial method (adv) achieves best Top-1 and FGSM "
    "error rate (ε = 4/255) compared to other mixup baselines providing 3.44% lower Top-1 error "
    "rate and 5.12% lower FGSM error rate. (l.1079-1082)"
)
_Q_T5 = (
    "Consistent with the previous experiments on CIFAR-100 and Tiny-ImageNet, Puzzle Mix shows "
    "the best performance in both Top-1 / Top-5 error rate, achieving 0.43%, 0.24% improvement "
    "each, compared to the best baseline (Table 5). (l.1091-1094)"
)
_Q_T6 = (
    "Table 6 demonstrates that our method using AugMix images improves both the generalization "
    "performance and the corruption accuracy by 3.95% and 2.31% each over AugMix baseline. "
    "(l.1132-1135)"
)
_Q_T7 = (
    "Table 7 shows that Puzzle Mix with the binary label space (binary) has 1.44% higher Top-1 "
    "error rate than multi-label case, and Puzzle Mix without transport (mask only) has 0.43% "
    "higher Top-1 error rate than Puzzle Mix with transport. (l.1158-1162)"
)
_Q_T8_NU = (
    "From Table 8, we observe that using two independent random variables ν0 and ν1 (adv) has "
    "significant improvement in adversarial robustness over using one variable (ν0 = ν1). "
    "(l.1183-1186)"
)
_Q_T8_FGSM = (
    "In the absence of linear decaying (fgsm), there is improvement in the FGSM error rate of "
    "4.02%, but the Top-1 error increases by 0.41%. (l.1186-1188)"
)
_Q_F2A = (
    "Figure 2 (a) shows the proposed mixup function well preserves the saliency information "
    "after mixup. (l.268-270)"
)
_Q_F2CDE = (
    "Evaluation results on the pretrained vanilla classifier in Figure 2 (c), (d), (e) show our "
    "mixup examples have the smallest loss and the highest accuracy compared to other methods, "
    "verifying our intuitions above. (l.291-294)"
)
_Q_OURS_OBJ = (
    "Not a claim of the paper: on the synthetic-objects data the ground-truth object masks tell "
    "how much of the two source objects survives mixing (Section 3's intent: keep the salient "
    "parts of both inputs)."
)


def paper_claims() -> list[Claim]:
    """Every checkable comparison of the paper's text (Tables 2-8, Figure 2), then ours."""
    c: list[Claim] = []
    for t, q in (("table2", _Q_T2), ("table3", _Q_T23), ("table4", _Q_T4)):
        n = t[-1]
        c.append(Claim(f"t{n}_pm_top1", f"Table {n}", q, t, "top1_err", "puzzlemix", BEST_BASELINE))
        c.append(
            Claim(
                f"t{n}_half_top1", f"Table {n}", q, t, "top1_err", "puzzlemix_half", BEST_BASELINE
            )
        )
    for t, q in (("table2", _Q_T2_ADV), ("table3", _Q_T3_ADV), ("table4", _Q_T4_ADV)):
        n = t[-1]
        for metric in ("top1_err", "fgsm_err"):
            c.append(
                Claim(
                    f"t{n}_adv_{metric.split('_')[0]}",
                    f"Table {n}",
                    q,
                    t,
                    metric,
                    "puzzlemix_adv",
                    BEST_BASELINE,
                )
            )
    c += [
        Claim("t5_pm_top1", "Table 5", _Q_T5, "table5", "top1_err", "puzzlemix", BEST_BASELINE),
        Claim("t5_pm_top5", "Table 5", _Q_T5, "table5", "top5_err", "puzzlemix", BEST_BASELINE),
        Claim("t6_aug_top1", "Table 6", _Q_T6, "table6", "top1_err", "puzzlemix_aug", "augmix"),
        Claim(
            "t6_aug_corruption",
            "Table 6",
            _Q_T6,
            "table6",
            "corruption_err",
            "puzzlemix_aug",
            "augmix",
        ),
    ]
    for row in ("binary", "mask_only"):
        c.append(
            Claim(
                f"t7_{row}",
                "Table 7",
                _Q_T7,
                "table7",
                "top1_err",
                "puzzlemix",
                row,
            )
        )
    c += [
        Claim("t8_nu_fgsm", "Table 8", _Q_T8_NU, "table8", "fgsm_err", "adv", "nu0_nu1"),
        Claim("t8_nu_pgd", "Table 8", _Q_T8_NU, "table8", "pgd_err", "adv", "nu0_nu1"),
        Claim("t8_fgsm_fgsm", "Table 8", _Q_T8_FGSM, "table8", "fgsm_err", "fgsm", "adv"),
        Claim("t8_fgsm_top1", "Table 8", _Q_T8_FGSM, "table8", "top1_err", "adv", "fgsm"),
    ]
    # Figure 2: the methods the paper's figure shows; Manifold mixup mixes hidden features, so
    # the figure omits it from (a) and (b)
    for other in ("input_mixup", "manifold_mixup", "cutmix"):
        if other != "manifold_mixup":
            c.append(
                Claim(
                    f"f2a_saliency_{other}",
                    "Figure 2 (a)",
                    _Q_F2A,
                    "figure2",
                    "saliency_kept",
                    "puzzlemix",
                    other,
                )
            )
        for stat, panel in (("loss", "c"), ("top1", "d"), ("top2", "e")):
            c.append(
                Claim(
                    f"f2{panel}_{stat}_{other}",
                    f"Figure 2 ({panel})",
                    _Q_F2CDE,
                    "figure2",
                    stat,
                    "puzzlemix",
                    other,
                )
            )
    c.append(
        Claim(
            "ours_f2_objects_cutmix",
            "Figure 2 (ours)",
            _Q_OURS_OBJ,
            "figure2",
            "object_kept",
            "puzzlemix",
            "cutmix",
            origin="ours",
        )
    )
    return c
