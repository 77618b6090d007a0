"""The metric catalogue: what each reported metric means.

For every ``check.metric`` facediag reports: its direction (higher is better, lower is
better, or none: a shift, not a quality), a short label, its unit, the short name the command
line accepts (``--max-drop rank1=0.01``), and how compare and the gate resample it (the row
kind of the subject bootstrap: per mated probe, per impostor pair, per paired probe, or over
genuine + impostor pairs for EER/TAR). compare, the gate, the renderers and the trainer read
it; none keeps a table of its own. A key may be a pattern (``verification.tar_at_far_*``).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from facediag.errors import FacediagError

HIGHER, LOWER = True, False


@dataclass(frozen=True)
class MetricInfo:
    key: str                   # "check.metric", or a pattern of them
    higher_is_better: bool | None
    label: str
    unit: str = "rate"         # rate | cosine | count | ratio | dims | auc | dprime | degrees | pixels | dB | p | ssim
    short: str | None = None   # name accepted on the command line
    resample: str | None = None  # probe | impostor | paired | pairs: how the subject bootstrap draws it


CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo("identification.rank1", HIGHER, "rank-1", short="rank1", resample="probe"),
    MetricInfo("identification.rank5", HIGHER, "rank-5", short="rank5", resample="probe"),
    MetricInfo("identification.rank10", HIGHER, "rank-10", short="rank10", resample="probe"),
    MetricInfo("identification.rank*", HIGHER, "rank-k", resample="probe"),
    MetricInfo("identification.accuracy_at_threshold", HIGHER, "accuracy at the threshold",
               short="accuracy_at_threshold", resample="probe"),
    MetricInfo("identification.far_at_threshold", LOWER, "false-accept rate at the threshold",
               short="far_at_threshold", resample="impostor"),
    MetricInfo("identification.open_set_dir", HIGHER, "open-set detection and identification rate"),
    MetricInfo("identification.open_set_correct_rejection_rate", HIGHER, "open-set correct rejections"),
    MetricInfo("identification.open_set_false_alarm_rate", LOWER, "open-set false alarms"),
    MetricInfo("identification.possible_mislabelled_probes", LOWER, "probes that look like another person's photo",
               "count"),
    MetricInfo("identification.rank1_without_possible_mislabels", HIGHER, "rank-1 with possible mislabels left out"),
    MetricInfo("identification.mislabel_judge_rank1", HIGHER, "rank-1 of the view probe labels are judged on"),
    MetricInfo("verification.auc", HIGHER, "ROC AUC", "auc", short="auc"),
    MetricInfo("verification.eer", LOWER, "equal error rate", short="eer", resample="pairs"),
    MetricInfo("verification.tar_at_far_*", HIGHER, "TAR at FAR", resample="pairs"),
    MetricInfo("verification.dprime", HIGHER, "d′", "dprime", short="dprime"),
    MetricInfo("verification.pair_accuracy_10fold", HIGHER, "10-fold pair accuracy"),
    MetricInfo("operating-point.eval_fmr_at_*", LOWER, "evaluation FMR at a threshold fixed on dev"),
    MetricInfo("operating-point.eval_fnmr_at_*", LOWER, "evaluation FNMR at a threshold fixed on dev"),
    MetricInfo("operating-point.eval_hter_at_*", LOWER, "evaluation HTER at a threshold fixed on dev"),
    MetricInfo("operating-point.dev_*", None, "a development-set figure"),
    MetricInfo("operating-point.threshold*", None, "a threshold", "cosine"),
    MetricInfo("operating-point.worst_fmr_ratio", LOWER, "evaluation FMR over its target, worst", "ratio"),
    MetricInfo("operating-point.ece_*", LOWER, "expected calibration error on eval"),
    MetricInfo("operating-point.brier_*", LOWER, "Brier score on eval"),
    MetricInfo("pair-gap.rank1", HIGHER, "rank-1 through DSR"),
    MetricInfo("pair-gap.hr_rank1", HIGHER, "rank-1 of the probes' own HR images"),
    MetricInfo("pair-gap.separation", HIGHER, "genuine − impostor mean", "cosine", short="separation"),
    MetricInfo("pair-gap.accuracy_at_threshold", HIGHER, "accuracy at the threshold"),
    MetricInfo("pair-gap.far_at_threshold", LOWER, "false-accept rate at the threshold"),
    MetricInfo("pair-gap.impostor_mean", LOWER, "impostor mean cosine", "cosine", short="impostor_mean",
               resample="impostor"),
    MetricInfo("pair-gap.genuine_mean", None, "genuine mean cosine", "cosine", resample="probe"),
    MetricInfo("pair-gap.paired_mean", None, "paired mean cosine", "cosine", resample="paired"),
    MetricInfo("dsr-vs-bicubic.rank1_dsr", HIGHER, "rank-1 through the DSR"),
    MetricInfo("dsr-vs-bicubic.rank1_bicubic", HIGHER, "rank-1 through plain bicubic"),
    MetricInfo("dsr-vs-bicubic.rank1_delta", HIGHER, "rank-1, DSR − bicubic"),
    MetricInfo("dsr-vs-bicubic.genuine_mean_dsr", None, "genuine mean cosine through the DSR", "cosine"),
    MetricInfo("dsr-vs-bicubic.genuine_mean_bicubic", None, "genuine mean cosine through bicubic", "cosine"),
    MetricInfo("dsr-vs-bicubic.genuine_delta", None, "genuine mean cosine, DSR − bicubic", "cosine"),
    MetricInfo("dsr-vs-bicubic.mcnemar_p", None, "exact McNemar p, DSR vs bicubic rank-1", "p"),
    MetricInfo("dsr-vs-bicubic.dsr_won", HIGHER, "probes only the DSR identifies", "count"),
    MetricInfo("dsr-vs-bicubic.dsr_lost", LOWER, "probes only bicubic identifies", "count"),
    MetricInfo("dsr-vs-bicubic.psnr_*", HIGHER, "PSNR against the HR images", "dB"),
    MetricInfo("dsr-vs-bicubic.ssim_*", HIGHER, "SSIM against the HR images", "ssim"),
    MetricInfo("norm-sanity.effective_rank", HIGHER, "effective rank", "dims", short="effective_rank"),
    MetricInfo("norm-sanity.impostor_mean", LOWER, "impostor mean cosine", "cosine"),
    MetricInfo("norm-sanity.dead_fraction", LOWER, "dead dimensions (share)"),
    MetricInfo("norm-sanity.dead_dimensions", LOWER, "dead dimensions", "count"),
    MetricInfo("norm-sanity.nonfinite_embeddings", LOWER, "NaN/Inf embeddings", "count"),
    MetricInfo("weights-integrity.matched_fraction", HIGHER, "parameters loaded"),
    MetricInfo("weights-integrity.dprime", HIGHER, "d′ at full resolution", "dprime"),
    MetricInfo("weights-integrity.nonfinite_tensors", LOWER, "NaN/Inf weight tensors", "count"),
    MetricInfo("weights-integrity.init_fraction", LOWER, "tensors at their init constants"),
    MetricInfo("preprocessing.auc_expected", HIGHER, "AUC with the expected input", "auc"),
    MetricInfo("alignment.nme_median", LOWER, "landmarks' distance from the template (inter-ocular)", "ratio",
               short="nme_median"),
    MetricInfo("alignment.not_found_share", LOWER, "sampled faces the detector did not find"),
    MetricInfo("alignment.rotation_median_abs", LOWER, "turn needed to align (|degrees|)", "degrees"),
    MetricInfo("alignment.rotation_median", None, "turn needed to align (degrees)", "degrees"),
    MetricInfo("alignment.scale_median", None, "zoom needed to align", "ratio"),
    MetricInfo("alignment.residual_median", LOWER, "template fit residual (pixels)", "pixels"),
    MetricInfo("alignment.score_median", None, "detector score", "ratio"),
    MetricInfo("alignment.sample_images", None, "faces sampled", "count"),
    MetricInfo("alignment.faces_found", None, "sampled faces found", "count"),
    MetricInfo("alignment.several_faces", None, "sampled images holding several faces", "count"),
    MetricInfo("gallery-enrollment.label_noise_suspects", LOWER, "enrolled images that look like another person",
               "count"),
    MetricInfo("gallery-enrollment.label_noise_share", LOWER, "share of enrolled images that look like another person"),
    MetricInfo("gallery-enrollment.label_noise_scored", None, "enrolled images with a leave-one-out template", "count"),
    MetricInfo("gallery-enrollment.label_noise_margin_max", LOWER,
               "largest lead of another person's template over the own one (left out)", "cosine"),
    MetricInfo("gallery-enrollment.label_noise_loo_rank1", HIGHER,
               "enrolled images their person's other images identify (suspects left out)"),
    MetricInfo("gallery-enrollment.rank1_without_label_suspects", HIGHER,
               "rank-1 with the suspect gallery images left out"),
    MetricInfo("demographic.fdr*", HIGHER, "fairness discrepancy rate (1: no differential)", "ratio"),
    MetricInfo("demographic.garbe*", LOWER, "GARBE (Gini of the groups' FMR and FNMR)", "ratio"),
    MetricInfo("demographic.fnmr_max_*", LOWER, "FNMR of the worst group over the groups'", "ratio"),
    MetricInfo("demographic.fmr_max_*", LOWER, "FMR of the worst group over the groups'", "ratio"),
    MetricInfo("demographic.fnmr_worst*", LOWER, "FNMR of the worst group"),
    MetricInfo("demographic.fmr_worst*", LOWER, "FMR of the worst group"),
    MetricInfo("demographic.threshold", None, "the threshold the groups are judged at", "cosine"),
)


def info(key: str) -> MetricInfo | None:
    """The catalogue entry of ``check.metric`` (exact keys before patterns), or None."""
    exact = next((m for m in CATALOGUE if m.key == key), None)
    return exact or next((m for m in CATALOGUE if fnmatch.fnmatchcase(key, m.key)), None)


def higher_is_better(key: str) -> bool | None:
    """True / False when facediag knows which way ``check.metric`` is better, else None."""
    entry = info(key)
    return None if entry is None else entry.higher_is_better


def resample_kind(key: str) -> str | None:
    """How the subject bootstrap draws this metric's rows (None: it is not resampled)."""
    entry = info(key)
    return None if entry is None else entry.resample


def resolve(name: str) -> str:
    """``check.metric`` as given, or a short name (rank1, eer, tar_at_far_0.01) expanded."""
    name = name.strip()
    if "." in name.split("tar_at_far_")[0]:  # a check prefix (a FAR such as 0.01 has a dot of its own)
        return name
    if name.startswith("tar_at_far_"):
        return f"verification.{name}"
    entry = next((m for m in CATALOGUE if m.short == name), None)
    if entry is None:
        raise FacediagError(f"unknown gate metric {name!r}: write it as check.metric (e.g. identification.rank1)")
    return entry.key
