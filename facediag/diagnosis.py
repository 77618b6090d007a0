"""Diagnosis: rules that read several check results together and name a root cause and a remedy.

Each rule reads only CheckResults (never models or data) and returns a Diagnosis or None.
Rules decide by the conditions the checks report (``_met``), never by copies of their
thresholds, so a suite that moves a threshold moves the check and its diagnosis together;
metric values appear only as evidence.

Causes come before the symptoms they explain. A diagnosis lists the symptoms (check conditions
met) it explains: those its rule found met while deciding, and those the rule declares its cause
accounts for. A later rule asks ``_unexplained``, so that a symptom already explained is not
diagnosed again as a cause of its own. Hence the order: faults the weights themselves show (unmatched keys), then
faults of the data the model is given (misaligned faces, wrong colours or range, a DSR that
hurts, mislabelled images), then what the model learned (untrained, collapse, memorisation).
Poor separation alone never names the weights while a data fault is diagnosed: it cannot be
judged until that fault is fixed.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable

from facediag.checks.base import CheckResult, Severity, Status


@dataclass
class Diagnosis:
    """A root cause named by reading several check results together."""

    id: str
    severity: Severity
    summary: str
    evidence: list[str] = field(default_factory=list)
    remedy: str = ""
    checks: list[str] = field(default_factory=list)  # the checks whose results it read
    explains: list[str] = field(default_factory=list)  # the symptoms it accounts for, "check: condition"

    def __post_init__(self):
        self.severity = Severity(self.severity)  # a report read back (or a caller) gives the value

    def as_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity.value, "summary": self.summary,
                "evidence": list(self.evidence), "remedy": self.remedy, "checks": list(self.checks),
                "explains": list(self.explains)}

    @classmethod
    def from_dict(cls, d: dict) -> "Diagnosis":
        return cls(d["id"], d["severity"], d["summary"], list(d.get("evidence", [])),
                   d.get("remedy", ""), list(d.get("checks", [])), list(d.get("explains", [])))


SEVERITY_ORDER = (Severity.FAILURE, Severity.WARNING, Severity.INFO)  # how diagnoses are listed

Results = dict[str, CheckResult]
Rule = Callable[[Results, list[Diagnosis]], Diagnosis | None]
Symptom = tuple[str, str]  # (check, condition)
RULES: list[tuple[str, Rule, tuple[Symptom, ...]]] = []

TRAIN_FIX = ("Fine-tune with `facediag train-contrastive`: supervised contrastive loss over [DSR; HR] with subject "
             "labels (every image of the person is a positive), validated by gallery rank-1 on held-out images — "
             "never by paired similarity.")


def rule(diag_id: str, explains: tuple[Symptom, ...] = ()):
    """Register a rule; ``explains`` are the symptoms its cause accounts for beyond the conditions
    it finds met while deciding (``diagnose`` records those)."""
    def deco(fn: Rule) -> Rule:
        RULES.append((diag_id, fn, tuple(explains)))
        return fn
    return deco


def _m(results: Results, check: str, metric: str):
    res = results.get(check)
    if res is None or res.status in (Status.SKIP, Status.ERROR):
        return None
    return res.metrics.get(metric)


# The conditions a rule found met while it decided: the symptoms its diagnosis explains.
_CONSULTED: ContextVar[list[Symptom] | None] = ContextVar("consulted", default=None)


def _hits(results: Results, check: str, conditions) -> list[str]:
    res = results.get(check)
    return [c for c in conditions if res is not None and res.met(c)]


def _claim(check: str, hits: list[str]) -> bool:
    consulted = _CONSULTED.get()
    if consulted is not None:
        consulted.extend((check, c) for c in hits)
    return bool(hits)


def _met(results: Results, check: str, *conditions: str) -> bool:
    """Whether the check ran and reported any of the named conditions as met; those met become
    symptoms the rule's diagnosis explains (if it makes one)."""
    return _claim(check, _hits(results, check, conditions))


def _met_unclaimed(results: Results, check: str, *conditions: str) -> bool:
    """``_met`` for a rule that only asks, deciding elsewhere whether it explains the symptom."""
    return bool(_hits(results, check, conditions))


def _has(found: list[Diagnosis], *ids: str) -> bool:
    return any(d.id in ids for d in found)


def _symptom(check: str, condition: str) -> str:
    return f"{check}: {condition}"


def _unexplained(results: Results, found: list[Diagnosis], check: str, *conditions: str) -> bool:
    """Whether any named condition was met and no diagnosis found so far explains it."""
    explained = {s for d in found for s in d.explains}
    return _claim(check, [c for c in _hits(results, check, conditions) if _symptom(check, c) not in explained])


# Symptoms of poor separation: people separate poorly and rank-1 drops. Broken weights produce
# them, and so does a fault in the data (or in what the model is fed) in any model: then they say
# nothing about the weights until the fault is fixed.
SEPARATION_SYMPTOMS: tuple[Symptom, ...] = (
    ("weights-integrity", "no-separation"), ("identification", "rank1-failed"), ("identification", "rank1-low"),
    ("identification", "threshold-does-not-hold"), ("verification", "eer-failed"), ("verification", "eer-high"),
)
# Faces far from the template (small, in a large canvas) also all look alike: impostors match as
# in a collapsed model. Only misalignment explains these; swapped colours do not make faces alike.
LIKENESS_SYMPTOMS: tuple[Symptom, ...] = (
    ("pair-gap", "collapsed"), ("norm-sanity", "impostors-match"), ("identification", "far-meaningless"),
)


def _met_symptoms(results: Results, symptoms: tuple[Symptom, ...]) -> list[str]:
    return [_symptom(*s) for s in symptoms if _met(results, *s)]


def _weights_unjudged(results: Results, fault: str) -> list[str]:
    """Evidence a data-fault diagnosis adds when poor separation would otherwise blame the weights."""
    if not _met(results, "weights-integrity", "no-separation"):
        return []
    dp = _m(results, "weights-integrity", "dprime")
    return [f"genuine vs impostor d′ {dp:.2f} reads like untrained weights, but it cannot be judged on these "
            f"faces: fix the {fault} first, then run again"]


@rule("weights-not-loaded", explains=(("weights-integrity", "at-init"), *SEPARATION_SYMPTOMS, *LIKENESS_SYMPTOMS))
def _weights_not_loaded(results, found):
    if not _met(results, "weights-integrity", "not-loaded", "keys-mismatch"):
        return None
    frac = _m(results, "weights-integrity", "matched_fraction")
    missing = _m(results, "weights-integrity", "missing_keys") or 0
    unexpected = _m(results, "weights-integrity", "unexpected_keys") or 0
    return Diagnosis(
        "weights-not-loaded", Severity.FAILURE,
        f"only {frac:.0%} of the backbone's parameters came from the checkpoint: the rest are random",
        [f"{missing} missing and {unexpected} unexpected keys"],
        "Load with strict=True and map the key prefix (module./backbone./model.) instead of strict=False; "
        "`facediag inspect WEIGHTS` shows what the file holds.", ["weights-integrity"])


@rule("misaligned-faces")
def _misaligned(results, found):
    grave = ("far-from-template", "no-face")
    mild = ("off-template", "rotated", "wrong-scale", "faces-missed")
    if not _met(results, "alignment", *grave, *mild):
        return None
    res = results["alignment"]
    m = res.metrics
    evidence = [f.message.split("; ")[0] for f in res.findings if f.severity != Severity.INFO]
    if m.get("nme_median") is not None:
        evidence.append(f"median landmark error {m['nme_median']:.2f} inter-ocular distances, turn "
                        f"{m['rotation_median']:.1f}°, zoom {m['scale_median']:.2f}× to the ArcFace template; faces "
                        f"found in {m['faces_found']}/{m['sample_images']} sampled images")
    # Loosely aligned faces cost some accuracy; faces far from the template leave nothing to judge the
    # model by, so only then does the misalignment explain poor separation and matching impostors.
    is_grave = _met(results, "alignment", *grave)
    if is_grave:
        evidence += _weights_unjudged(results, "alignment")
    return Diagnosis("misaligned-faces", Severity.FAILURE if is_grave else Severity.WARNING,
                     "the faces are not aligned as the model expects: every score on them understates the model",
                     evidence,
                     "Align the images to the ArcFace 5-point template before evaluating or training: "
                     "`facediag align SRC DST` writes aligned 112×112 crops in the same layout (or run with "
                     "`--align mtcnn`); use the same detector and template in the application.", ["alignment"],
                     explains=_met_symptoms(results, SEPARATION_SYMPTOMS + LIKENESS_SYMPTOMS) if is_grave else [])


@rule("preprocessing-mismatch", explains=SEPARATION_SYMPTOMS)
def _preprocessing(results, found):
    by_pixels = _met(results, "preprocessing", "pixels-bgr")
    by_model = _met(results, "preprocessing", "prefers-range-0-1", "prefers-bgr", "prefers-bgr-strongly")
    # Weights that are broken by their own evidence, or a collapsed space, have no preferred
    # input: their AUCs differ by noise (the pixels still tell the channel order).
    if by_model and not by_pixels and (
            _has(found, "weights-not-loaded") or _met(results, "weights-integrity", "at-init", "nonfinite-weights")
            or _met(results, "pair-gap", "collapsed") or _met(results, "norm-sanity", "impostors-match")):
        return None
    if not (by_pixels or by_model):
        return None
    summary = ("the images are stored with red and blue swapped (BGR): the model is given the wrong colours"
               if by_pixels else "the model expects different input than it is given")
    remedy = ("Feed RGB 112×112 normalised as (x/255 − 0.5)/0.5, in training, validation and the app alike; "
              "or, if the model was trained otherwise, make every stage use that one convention.")
    if by_pixels:
        remedy = ("Re-save the images as RGB (OpenCV arrays are BGR: cv2.cvtColor(img, cv2.COLOR_BGR2RGB) before "
                  "saving with PIL, or save with cv2.imwrite, which expects BGR). " + remedy)
    evidence = [f.message for f in results["preprocessing"].findings if f.severity == Severity.FAILURE]
    evidence += _weights_unjudged(results, "input convention")
    return Diagnosis("preprocessing-mismatch", Severity.FAILURE, summary, evidence, remedy, ["preprocessing"])


# What a DSR that hurts does to the probes it makes (the HR gallery and the weights are untouched):
# people lost against their own HR images, shifted norms, lower rank-1 and separation on the probes.
DSR_SYMPTOMS: tuple[Symptom, ...] = (
    ("pair-gap", "hr-dsr-rank1-gap"), ("norm-sanity", "norm-shift"), ("identification", "rank1-failed"),
    ("identification", "rank1-low"), ("verification", "eer-failed"), ("verification", "eer-high"),
)


@rule("dsr-hurts", explains=DSR_SYMPTOMS)
def _dsr_hurts(results, found):
    if not _met(results, "dsr-vs-bicubic", "dsr-worse"):
        return None
    # A DSR is judged through the face model: broken weights cannot judge it.
    if _has(found, "weights-not-loaded") or _met(results, "weights-integrity", "at-init", "nonfinite-weights"):
        return None
    res = results["dsr-vs-bicubic"]
    m, name = res.metrics, res.data.get("dsr") or "the DSR"
    evidence = [f"rank-1 {m['rank1_dsr']:.1%} through {name} against {m['rank1_bicubic']:.1%} through plain bicubic "
                f"on the same {m['n_probes']} probes: {m['dsr_lost']} lost, {m['dsr_won']} won (exact McNemar "
                f"p = {m['mcnemar_p']:.2g})",
                f"genuine mean cosine {m['genuine_mean_dsr']:.3f} through the DSR against "
                f"{m['genuine_mean_bicubic']:.3f}"]
    if m.get("psnr_dsr") is not None:
        evidence.append(f"against the probes' HR images: PSNR {m['psnr_dsr']:.2f} against {m['psnr_bicubic']:.2f} dB, "
                        f"SSIM {m['ssim_dsr']:.3f} against {m['ssim_bicubic']:.3f} ({m['n_quality']} probes)")
    if _met(results, "pair-gap", "hr-dsr-rank1-gap"):
        hr1 = _m(results, "pair-gap", "hr_rank1")
        evidence.append(f"the probes' own HR images reach rank-1 {hr1:.1%}: part of what is lost on the way is the "
                        f"DSR's, not the face model's")
    return Diagnosis("dsr-hurts", Severity.FAILURE,
                     f"the DSR network {name} makes faces harder to recognise than plain bicubic upsampling",
                     evidence,
                     "Run with plain bicubic (leave out --dsr) until the DSR is retrained with an identity/feature "
                     "loss: a term on the face model's embeddings of its outputs (e.g. 1 − cos(f(DSR(x)), f(HR)), the "
                     "face model frozen) beside the pixel loss, and accept it only when rank-1 through it beats "
                     "bicubic here (PSNR alone does not say a DSR keeps identities).", ["dsr-vs-bicubic"])


LISTED = 20  # suspect images a diagnosis names one by one (the check's data lists up to 1,000)


def _limit(results: Results, check: str, condition: str, metric: str):
    """The limit a check held ``metric`` to in ``condition`` on this run (the suite's, not a copy)."""
    res = results.get(check)
    outcome = next((o for o in res.conditions if o.id == condition), None) if res is not None else None
    return None if outcome is None else outcome.limits.get(metric)


@rule("gallery-label-noise")
def _label_noise(results, found):
    if not _met(results, "gallery-enrollment", "label-noise", "label-noise-heavy"):
        return None
    # The model is the judge of whom an image resembles: weights broken by their own evidence, a
    # collapsed space or one that barely separates people cannot judge a label.
    if (_has(found, "weights-not-loaded")
            or _met(results, "weights-integrity", "at-init", "nonfinite-weights", "no-separation")
            or _met(results, "pair-gap", "collapsed") or _met(results, "norm-sanity", "impostors-match")):
        return None
    res = results["gallery-enrollment"]
    m, noise = res.metrics, res.data.get("label_noise") or {}
    suspects = noise.get("suspects") or []
    n = m.get("label_noise_suspects") or len(suspects)
    evidence = [f"{s['path']} is filed as {s['subject']} but looks like {s['resembles']}: "
                f"cosine {s['other_score']:.2f} to {s['resembles']}'s template "
                f"against {s['own_score']:.2f} to {s['subject']}'s without it"
                for s in suspects[:LISTED]]
    if n > LISTED:
        evidence.append(f"and {n - LISTED} more (gallery-enrollment's result lists "
                        f"{'them all' if n <= len(suspects) else f'the clearest {len(suspects)}'})")
    explains = []
    without, rank1 = m.get("rank1_without_label_suspects"), _m(results, "identification", "rank1")
    if without is not None and rank1 is not None:
        evidence.append(f"with them left out of their templates rank-1 would be {without:.1%} (now {rank1:.1%})")
        # Rank-1 is explained only where leaving the suspects out would lift it past the check's limit.
        explains = [_symptom("identification", c) for c in ("rank1-failed", "rank1-low")
                    if _met_unclaimed(results, "identification", c)
                    and (limit := _limit(results, "identification", c, "rank1")) is not None and without >= limit]
    probes = _m(results, "identification", "possible_mislabelled_probes")
    if probes:
        evidence.append(f"{probes} probe(s) also look like another enrolled person's photo (identification lists "
                        "them); rank-1 without them "
                        f"{_m(results, 'identification', 'rank1_without_possible_mislabels'):.1%}")
    return Diagnosis("gallery-label-noise",
                     Severity.FAILURE if _met(results, "gallery-enrollment", "label-noise-heavy") else Severity.WARNING,
                     f"{n} enrolled image(s) look like another person's photo: mislabelled gallery images (a swapped "
                     f"file, a wrong folder) corrupt their people's templates, and the model takes the blame",
                     evidence,
                     "Check those files' labels: move each to the folder of the person it shows, or drop it, then run "
                     "again. The HTML report shows each beside both people's gallery images; probes listed as possible "
                     "mislabels by identification need the same.", ["gallery-enrollment"], explains=explains)


@rule("untrained-weights", explains=SEPARATION_SYMPTOMS)
def _untrained(results, found):
    if _has(found, "weights-not-loaded"):
        return None
    at_init = _met(results, "weights-integrity", "at-init")
    # The weights' own evidence names them whatever the data. Poor separation alone does only on
    # data with no diagnosed fault, and unless everything matches (that is collapse, below).
    no_sep = (_unexplained(results, found, "weights-integrity", "no-separation")
              and not _met(results, "norm-sanity", "impostors-match"))
    if not (at_init or no_sep):
        return None
    init = _m(results, "weights-integrity", "init_fraction")
    dp = _m(results, "weights-integrity", "dprime")
    evidence = []
    if at_init:
        evidence.append(f"{init:.0%} of layer-scale/norm tensors still hold their initial constants")
    if dp is not None:
        evidence.append(f"genuine vs impostor d′ {dp:.2f}")
    if _met(results, "pair-gap", "paired-high"):
        paired = _m(results, "pair-gap", "paired_mean")
        evidence.append(f"paired similarity {paired:.2f} is high only because random features match near-identical "
                        f"pixels — this is not memorisation")
    return Diagnosis("untrained-weights", Severity.FAILURE,
                     "the weights behave as untrained: the backbone never learned faces",
                     evidence, "Start from the official pretrained EdgeFace weights (check the path and that the "
                     "training run saved the backbone after loading them).", ["weights-integrity", "pair-gap"])


@rule("embedding-collapse", explains=(*LIKENESS_SYMPTOMS, *SEPARATION_SYMPTOMS, ("norm-sanity", "low-rank")))
def _collapse(results, found):
    if _has(found, "weights-not-loaded", "untrained-weights"):
        return None
    # pair-gap's collapse rule, or impostors matching across every image (norm-sanity). A low
    # effective rank alone is not "everything matches everything": norm-sanity warns about it.
    if not (_unexplained(results, found, "pair-gap", "collapsed")
            or _unexplained(results, found, "norm-sanity", "impostors-match")):
        return None
    imp = _m(results, "pair-gap", "impostor_mean")
    gen = _m(results, "pair-gap", "genuine_mean")
    erank = _m(results, "norm-sanity", "effective_rank")
    evidence = []
    if imp is not None:
        evidence.append(f"impostor mean cosine {imp:.3f} vs genuine {gen:.3f} (healthy: ≈0.05 vs ≈0.3–0.7)")
    paired = _m(results, "pair-gap", "paired_mean")
    if paired is not None:
        evidence.append(f"paired similarity {paired:.3f} — the number a paired-only validation reports")
    far = _m(results, "identification", "far_at_threshold")
    acc = _m(results, "identification", "accuracy_at_threshold")
    t = _m(results, "identification", "threshold")
    if far is not None:
        evidence.append(f"at cosine ≥ {t:g}: accuracy {acc:.1%} but false-accept rate {far:.1%}")
    if erank is not None:
        evidence.append(f"effective rank of the embeddings {erank:.1f}")
    return Diagnosis("embedding-collapse", Severity.FAILURE,
                     "embedding collapse: every face maps to nearly the same point, so everything matches everything",
                     evidence, "The training objective had no negatives (e.g. 1 − cos(f(DSR_i), f(HR_i)) alone). "
                     + TRAIN_FIX, ["pair-gap", "norm-sanity", "identification"])


@rule("pair-memorization")
def _memorization(results, found):
    if _has(found, "weights-not-loaded", "untrained-weights", "embedding-collapse"):
        return None
    if not _met(results, "pair-gap", "memorized"):
        return None
    paired, gen, gap, rank1 = (results["pair-gap"].metrics.get(k)
                               for k in ("paired_mean", "genuine_mean", "gap", "rank1"))
    return Diagnosis(
        "pair-memorization", Severity.FAILURE,
        "pair memorisation: each DSR output matches its own HR image, not the person",
        [f"paired similarity {paired:.3f} vs cross-image genuine {gen:.3f} (gap {gap:.3f})",
         f"gallery rank-1 {rank1:.1%}",
         "validation that compares each output only with its own HR pair reports the first number"],
        "Treat every image of the same person as a positive, not only the own pair. " + TRAIN_FIX,
        ["pair-gap"])


@rule("hr-dsr-domain-gap")
def _domain_gap(results, found):
    if _has(found, "weights-not-loaded", "untrained-weights", "embedding-collapse"):
        return None
    evidence = []  # symptoms a diagnosed cause (a DSR worse than bicubic: dsr-hurts) explains are not a gap
    if _unexplained(results, found, "pair-gap", "hr-dsr-rank1-gap"):
        hr1, dsr1 = _m(results, "pair-gap", "hr_rank1"), _m(results, "pair-gap", "rank1")
        evidence.append(f"rank-1 {hr1:.1%} on the probes' own HR images vs {dsr1:.1%} through DSR")
    if _unexplained(results, found, "norm-sanity", "norm-shift"):
        ratio = _m(results, "norm-sanity", "dsr_hr_norm_ratio")
        evidence.append(f"DSR embeddings have {ratio:.2f}× the norm of HR embeddings")
    if not evidence:
        return None
    return Diagnosis("hr-dsr-domain-gap", Severity.WARNING,
                     "the model works on HR faces but loses people after super-resolution",
                     evidence, "Some loss at very low resolution is expected. To recover it, fine-tune on DSR "
                     "outputs paired with HR images of the same person: " + TRAIN_FIX,
                     ["pair-gap", "norm-sanity"])


@rule("regression-vs-pretrained")
def _regression(results, found):
    res = results.get("pretrained-baseline")
    if res is None or res.status != Status.FAIL:
        return None
    return Diagnosis("regression-vs-pretrained", Severity.FAILURE,
                     "the checkpoint is worse than the pretrained model it started from",
                     [f.message for f in res.findings],
                     "Keep the pretrained model until a fine-tune beats it on gallery rank-1; add an anchor "
                     "term (`train-contrastive --anchor-weight`) so fine-tuning cannot leave the space that works.",
                     ["pretrained-baseline"])


@rule("data-leakage")
def _leakage(results, found):
    eval_pairs = _met(results, "subject-overlap", "leaked")
    train_pairs = _met(results, "subject-overlap", "trained-on-evaluation-images")
    if not (eval_pairs or train_pairs):
        return None
    where, evidence = [], []
    if eval_pairs:
        where.append("in the gallery and among the probes")
        evidence.append(f"{_m(results, 'subject-overlap', 'leaked_identical') or 0} identical and "
                        f"{_m(results, 'subject-overlap', 'leaked_near_duplicate') or 0} near-duplicate "
                        f"image pairs")
    if train_pairs:
        where.append("in training and in evaluation")
        evidence.append(f"{_m(results, 'subject-overlap', 'train_eval_identical') or 0} identical and "
                        f"{_m(results, 'subject-overlap', 'train_eval_near_duplicate') or 0} near-duplicate "
                        f"training × evaluation image pairs")
    return Diagnosis("data-leakage", Severity.FAILURE,
                     f"the same pictures are {' and '.join(where)}: scores are inflated",
                     evidence,
                     "Split by capture session (all variants of one shot on one side), de-duplicate by content hash "
                     "and by pixel similarity before splitting.", ["subject-overlap"])


@rule("gallery-probe-mismatch")
def _mismatch(results, found):
    evidence, severity = [], Severity.WARNING
    if _met(results, "subject-overlap", "no-shared-subjects"):
        evidence.append("no probe subject is enrolled in the gallery")
        severity = Severity.FAILURE
    elif _met(results, "subject-overlap", "open-set-share"):
        evidence.append(f"{_m(results, 'subject-overlap', 'open_set_share'):.0%} of probes have no gallery subject")
    if _met(results, "subject-overlap", "id-clashes"):
        evidence.append(f"{_m(results, 'subject-overlap', 'id_clashes')} subject id(s) differ only by zero padding "
                        f"or case")
    if _met(results, "arcface-head", "label-coverage"):
        evidence.append(f"only {_m(results, 'arcface-head', 'label_coverage'):.0%} of the data's subjects are in "
                        f"the checkpoint's label map")
    if not evidence:
        return None
    return Diagnosis("gallery-probe-mismatch", severity,
                     "gallery and probes do not describe the same people the same way", evidence,
                     "Derive subject ids the same way for both roots (--subject-regex), normalise zero padding, "
                     "and enrol every person you probe.", ["subject-overlap", "arcface-head"])


DIFFERENTIAL = ("fnmr-differential-large", "fmr-differential-large", "fnmr-differential", "fmr-differential",
                "fdr-low")


@rule("demographic-differential")
def _demographic(results, found):
    # A model that learned nothing (or holds random weights) fails every group: no differential to name.
    if _has(found, "weights-not-loaded", "untrained-weights", "embedding-collapse"):
        return None
    if not _met(results, "demographic", *DIFFERENTIAL):
        return None
    res = results["demographic"]
    m, worst = res.metrics, res.data.get("worst") or {}
    at = f"at the {worst.get('judged', 'judged')} threshold {m.get('threshold', 0):.3f}"
    evidence, named = [], None
    for rate, label, kind in (("fnmr", "FNMR", "genuine pairs falsely rejected"),
                              ("fmr", "FMR", "impostor pairs falsely accepted")):
        w = worst.get(rate)
        if not w:
            continue
        sig = "beyond" if w.get("significant") else "within"
        lo, hi = (w.get("low"), w.get("high"))
        ci = f" [{lo:.2%}, {hi:.2%}]" if lo is not None and hi is not None else ""
        ratio = w.get("max_geomean")
        evidence.append(f"{w['group']}: {label} {w['rate']:.2%}{ci} ({kind}) against {w['rest']:.2%} in the other "
                        f"groups, {sig} the subject-bootstrap interval of the difference"
                        + (f"; {ratio:.2f}× the groups' geometric mean" if ratio is not None else ""))
        if named is None and (w.get("significant") or rate == "fmr"):
            named = (w, label)
    if m.get("fdr") is not None:
        evidence.append(f"FDR {m['fdr']:.3f} [{m['fdr_low']:.3f}, {m['fdr_high']:.3f}], GARBE {m['garbe']:.3f} {at}")
    w, label = named or (worst.get("fnmr") or worst.get("fmr"), "FNMR" if worst.get("fnmr") else "FMR")
    subject = (f"{w['group']} has {label} {w['rate']:.2%}" + (f" [{w['low']:.2%}, {w['high']:.2%}]"
                                                              if w.get("low") is not None else "")
               if w else "the groups' error rates differ")
    large = _met(results, "demographic", "fnmr-differential-large", "fmr-differential-large")
    return Diagnosis("demographic-differential", Severity.FAILURE if large else Severity.WARNING,
                     f"error rates differ between demographic groups {at}: {subject}, worse than the other groups "
                     "beyond chance", evidence,
                     "Look at the worst group's images first (capture, resolution, blur, pose, alignment differ by "
                     "group more often than the model does); then add that group's people to training or fine-tune "
                     "with them, and re-check at one global threshold. A deployment threshold must hold its FMR for "
                     "the group with the highest FMR; report per-group rates with the model (ISO/IEC 19795-10).",
                     ["demographic"])


def _severity(result: CheckResult, condition: str) -> Severity | None:
    return next((o.severity for o in result.conditions if o.id == condition), None)


def diagnose(results: list[CheckResult]) -> list[Diagnosis]:
    """Every diagnosis the rules find, failures first."""
    by_name = {r.name: r for r in results}
    found: list[Diagnosis] = []
    for _, fn, explains in RULES:
        token = _CONSULTED.set(consulted := [])
        try:
            d = fn(by_name, found)
        finally:
            _CONSULTED.reset(token)
        if d is None:
            continue
        # The conditions (not mere facts) it found met while deciding, then the symptoms it declares.
        fired = [_symptom(c, cond) for c, cond in consulted if _severity(by_name[c], cond) != Severity.INFO]
        declared = [_symptom(*s) for s in explains if _met(by_name, *s)]
        d.explains = list(dict.fromkeys([*fired, *d.explains, *declared]))
        found.append(d)
    return sorted(found, key=lambda d: SEVERITY_ORDER.index(d.severity))
