"""Pure metric functions: numpy arrays in, small frozen results (with .as_dict()) out."""
from .distribution import (DeadDimensions, dead_dimensions, dprime, effective_rank, linear_cka,
                           mean_pairwise_cosine, norm_stats, score_summary)
from .identification import (MIN_FALSE_ACCEPTS, FarThreshold, IdentificationResult,
                             OpenSetResult, ThresholdResult, build_templates, closed_set,
                             l2_normalize, open_set, similarity_matrix, threshold_accuracy,
                             threshold_for_far)
from .significance import (BootstrapCI, DeltaResult, bootstrap_ci, bootstrap_eer,
                           bootstrap_mean, bootstrap_rank1, bootstrap_tar_at_far,
                           bootstrap_verification_stats, mcnemar_exact,
                           paired_bootstrap_delta, paired_bootstrap_rank1)
from .verification import (KFoldResult, TarAtFar, VerificationResult, eer_from_rates,
                           genuine_impostor_scores, kfold_pair_accuracy, verification_metrics)

__all__ = [
    "MIN_FALSE_ACCEPTS", "BootstrapCI", "DeadDimensions", "DeltaResult", "FarThreshold",
    "IdentificationResult", "KFoldResult", "OpenSetResult", "TarAtFar", "ThresholdResult",
    "VerificationResult", "bootstrap_ci", "bootstrap_eer", "bootstrap_mean", "bootstrap_rank1",
    "bootstrap_tar_at_far", "bootstrap_verification_stats", "build_templates", "closed_set", "dead_dimensions",
    "dprime", "eer_from_rates", "effective_rank", "genuine_impostor_scores", "kfold_pair_accuracy",
    "l2_normalize", "linear_cka", "mcnemar_exact", "mean_pairwise_cosine", "norm_stats",
    "open_set", "paired_bootstrap_delta", "paired_bootstrap_rank1", "score_summary",
    "similarity_matrix", "threshold_accuracy", "threshold_for_far", "verification_metrics",
]
