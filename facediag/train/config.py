"""TrainConfig: every setting of a contrastive fine-tune, checked before anything is loaded."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from facediag.data.aligner import ALIGN_CHOICES
from facediag.data.degradation import check_mode as check_degradation
from facediag.data.detect import require_extra
from facediag.data.index import DEFAULT_SUBJECT_REGEX
from facediag.errors import FacediagError
from facediag.outputs import same_file
from facediag.models.presets import DEFAULT_THRESHOLD

OBJECTIVES = ("supcon", "paired", "instance")
VIEWS = ("hr+lr", "hr")
VAL_SPLITS = ("subjects", "images")

# Settings that define what a run computes: a --resume with other values would silently
# mix two runs, so it is refused. The others (epochs, patience, device, ...) may change.
RESUME_IDENTITY = ("arch", "objective", "views", "vlr_size", "dsr", "batch_subjects",
                   "images_per_subject", "temperature", "lr", "weight_decay", "warmup_steps",
                   "steps_per_epoch", "anchor_weight", "seed", "hflip", "gallery_per_subject",
                   "threshold")


@dataclass
class TrainConfig:
    """Settings of ``train_contrastive``; paths may be str or Path.

    ``objective``: "supcon" is the fix. "paired" (1 − cos(DSR_i, HR_i)) and "instance"
    (InfoNCE with the own pair as the only positive) exist ONLY to reproduce the failures
    facediag diagnoses; the validation shows them collapsing or memorising pairs.
    """

    data: str | Path | None = None
    out: str | Path | None = None
    weights: str | Path | None = None      # None: train from scratch (arch)
    arch: str = "edgeface_xxs"
    val_data: str | Path | None = None     # None: hold out subjects or images of data
    val_split: str = "subjects"            # subjects | images (when val_data is None)
    val_fraction: float = 0.25
    train_subjects: list[str] | None = None
    val_subjects: list[str] | None = None
    seen_holdout: int = 0                  # images per training subject kept out of training
    layout: str = "auto"                   # and validated as a second ("seen") set
    subject_regex: str = DEFAULT_SUBJECT_REGEX
    gallery_per_subject: int = 3
    dsr: str | None = None                 # None: bicubic
    dsr_weights: str | Path | None = None
    vlr_size: int = 16
    degrade: str = "bicubic"               # bicubic | realistic: how images without a VLR file are degraded
    align: str = "none"                    # none | mtcnn | auto: HR faces warped to the ArcFace template
    views: str = "hr+lr"
    objective: str = "supcon"
    batch_subjects: int = 16               # P
    images_per_subject: int = 4            # K
    temperature: float = 0.07
    lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int | None = None        # None: 5 % of all steps
    epochs: int = 20
    steps_per_epoch: int | None = None     # None: one pass over the training images
    anchor_weight: float = 0.0
    threshold: float = DEFAULT_THRESHOLD   # operating point reported by validation
    patience: int | None = None            # epochs without a better val rank-1 before stopping
    seed: int = 0
    device: str = "auto"
    amp: bool = True                       # bf16 autocast, CUDA only
    resume: bool = False
    hflip: bool = True
    save_every: int | None = None          # also save resume state every N steps
    batch_size: int = 64                   # validation embedding batch
    cache_images: int = 20000              # decoded training pairs kept in memory (75 KB each)
    progress: bool = True

    def check(self) -> TrainConfig:
        """Raise FacediagError for a setting that cannot work; return self (paths expanded)."""
        if self.data is None:
            raise FacediagError("no training data: give --data ROOT")
        if self.out is None:
            raise FacediagError("no output: give --out FILE")
        for name in ("data", "out", "weights", "val_data", "dsr_weights"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)).expanduser())
        self._check_weights()
        self._check_choices()
        self._check_numbers()
        return self

    def _check_weights(self) -> None:
        """--weights exists, and no file the run writes is it."""
        w, out = self.weights, self.out
        if w is None:
            return
        if not w.is_file():
            raise FacediagError(f"--weights {w}: no such file")
        # Every file the run writes, not only --out, must leave the input alone.
        if any(same_file(p, w) for p in output_paths(out).values()):
            raise FacediagError(f"--out {out} would overwrite the input weights {w}; "
                                "choose another output file")

    def _check_choices(self) -> None:
        """Each choice is one of its kind's, and the choices fit together."""
        _choice("objective", self.objective, OBJECTIVES)
        _choice("views", self.views, VIEWS)
        _choice("val-split", self.val_split, VAL_SPLITS)
        _choice("align", self.align, ALIGN_CHOICES)
        if self.align != "none":
            require_extra()
        if self.views == "hr" and self.objective != "supcon":
            raise FacediagError(f"--objective {self.objective} compares each DSR output with its "
                                "own HR image and needs --views hr+lr")
        if self.anchor_weight < 0:
            raise FacediagError("--anchor-weight must be >= 0")
        if self.anchor_weight > 0 and self.weights is None:
            raise FacediagError("--anchor-weight keeps embeddings near the pretrained model's: "
                                "it needs --weights")

    def _check_numbers(self) -> None:
        """Counts, sizes and rates within their ranges."""
        for name in ("batch_subjects", "epochs", "gallery_per_subject"):
            if getattr(self, name) < 1:
                raise FacediagError(f"--{name.replace('_', '-')} must be at least 1")
        if self.images_per_subject < 2 and self.views == "hr":
            raise FacediagError("--views hr needs --images-per-subject >= 2 (positives)")
        if self.images_per_subject < 1:
            raise FacediagError("--images-per-subject must be at least 1")
        if not 4 <= int(self.vlr_size) <= 112:
            raise FacediagError("--vlr-size must be between 4 and 112 pixels")
        check_degradation(self.degrade)
        if not 0 < self.val_fraction < 1:
            raise FacediagError("--val-fraction must be between 0 and 1")
        if self.lr <= 0 or self.temperature <= 0:
            raise FacediagError("--lr and --temperature must be positive")
        for name in ("steps_per_epoch", "patience", "save_every", "warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "warmup_steps" else 1):
                raise FacediagError(f"--{name.replace('_', '-')} must be positive")
        if self.seen_holdout < 0:
            raise FacediagError("--seen-holdout must be >= 0")

    def to_dict(self) -> dict:
        """JSON-friendly copy (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def output_paths(out: str | Path) -> dict[str, Path]:
    """Every file a run writes, from ``--out``."""
    out = Path(out).expanduser()
    return {"out": out, "sidecar": out.with_suffix(".json"),
            "history": out.with_name(f"{out.stem}.history.json"),
            "plot": out.with_name(f"{out.stem}.curves.png"),
            "resume": out.with_name(f"{out.stem}.resume.pt")}


def _choice(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise FacediagError(f"--{name} {value!r}: choose one of {', '.join(allowed)}")


_RANGE = re.compile(r"^(.*?)(\d+)$")


def parse_subjects(text: str | None) -> list[str] | None:
    """'s1-s30,s35' -> ['s1', ..., 's30', 's35']. A range needs two ends with the same
    prefix and a number (``s1-s30``, ``001-050``); anything else is a literal subject id."""
    if text is None or not str(text).strip():
        return None
    out: list[str] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        a, b = _RANGE.match(lo), _RANGE.match(hi)
        if sep and a and b and a.group(1) == b.group(1) and int(a.group(2)) <= int(b.group(2)):
            width = len(a.group(2)) if a.group(2).startswith("0") else 0
            out += [f"{a.group(1)}{n:0{width}d}" for n in range(int(a.group(2)), int(b.group(2)) + 1)]
        else:
            out.append(part)
    return list(dict.fromkeys(out))
