"""The model runtime room of a Session: the models by role, their Embedders, the embeddings
of every view and the gallery-matching Evaluations, and what a check of a role may require.

It reads images only through the pixel room (Pixels.items), so a Runtime over other models
(Session.with_models) embeds the same pixels without decoding them again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from facediag.data.pixels import Sample
from facediag.distributed import Distributed
from facediag.embed import Embedder, Item, build_embedder
from facediag.errors import FacediagError
from facediag.models.checkpoint import load_checkpoint
from facediag.models.edgeface import VARIANTS
from facediag.models.onnx import ONNX_FORMAT
from facediag.models.presets import EDGEFACE
from facediag.models.loaded import LoadedModel, dynamic_int8, preset_of
from facediag.protocols.gallery import Evaluation, build_evaluation
from facediag.session.data import Data
from facediag.session.pixels import Pixels

ROLES = ("model", "baseline")
# probe_bicubic: the probes through plain bicubic instead of the DSR, the baseline every DSR must
# beat (the dsr check); a view of its own only where the DSR is not bicubic (compares_bicubic).
VIEWS = ("gallery", "probe_hr", "probe_dsr", "probe_bicubic")
_PROBLEM_ORDER = ("gallery", "probe_dsr", "probe_hr", "probe_bicubic")  # the order unreadable files are listed in


@dataclass
class Embeddings:
    raw: np.ndarray  # [N, D]; NaN rows where the image could not be read
    subjects: np.ndarray  # [N] str
    failures: dict[int, str] = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.raw).all(axis=1)


class Runtime:
    """Models, embeddings and evaluations of one run, each computed once.

    ``models`` are loaded models given by role, else loaded from the config's weights on first
    use (``from_config=False``: the given roles are the only ones); ``embedders`` a dict shared
    with other Runtimes over the same models, so an image is embedded once per model across
    them (one per probe resolution, say)."""

    def __init__(self, data: Data, pixels: Pixels, models: dict[str, LoadedModel] | None = None,
                 embedders: dict[str, Embedder] | None = None, *, from_config: bool = True):
        self.data, self.pixels = data, pixels
        self._from_config = from_config
        self._models: dict[str, LoadedModel] = dict(models or {})
        self._embedders: dict[str, Embedder] = embedders if embedders is not None else {}
        self.embedded: dict[tuple[str, str], Embeddings] = {}
        self._evaluations: dict[str | tuple[str, str], Evaluation] = {}
        self.rank_counts: list[dict] | None = None  # after prepare(): what each rank computed

    # ---------------------------------------------------------------- models
    def _given(self, role: str) -> tuple:
        """(weights, arch, card) the config gives for a role."""
        c = self.data.config
        if not self._from_config:
            return None, None, None
        return (c.weights, c.arch, c.card) if role == "model" else (c.baseline_weights, c.baseline_arch,
                                                                     c.baseline_card)

    @property
    def embedders(self) -> dict[str, Embedder]:
        """The Embedders by role, shared with the Runtimes given the same dict (e.g. the development set's)."""
        return self._embedders

    def has_role(self, role: str) -> bool:
        return role in self._models or self._given(role)[0] is not None

    def roles(self) -> list[str]:
        """Every role with a model: those given (bench names them by checkpoint), then the config's."""
        return list(dict.fromkeys([*self._models, *(r for r in ROLES if self.has_role(r))]))

    def model(self, role: str = "model") -> LoadedModel:
        """The loaded model of a role ("model" or "baseline"), loaded strictly on first use."""
        if role not in self._models:
            path, arch, card = self._given(role)
            if path is None:
                raise FacediagError(f"no weights given for the {role}")
            self._models[role] = load_checkpoint(path, arch=arch, card=card)
        return self._models[role]

    def check_card(self, role: str = "model") -> None:
        """A model that is not a known EdgeFace variant (a card, ``--arch custom``, a custom ONNX
        graph) embeds one blank face now, so a model that cannot take its input, or returns other
        than its card's embedding_dim, is refused (one line) before any work, not in every check."""
        loaded = self.model(role)
        if preset_of(loaded) == EDGEFACE and loaded.variant in VARIANTS:
            return
        try:
            self.embedder(role).forward(torch.zeros(1, 3, 112, 112))
        except (RuntimeError, ValueError) as e:  # shapes or dtypes the model does not take
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            preset = preset_of(loaded)
            raise FacediagError(f"{loaded.path or role}: the model fails on its input, a blank "
                                f"{list(preset.input_size)} face as {preset.name} feeds it ({detail[:200]}); "
                                "give the model card that says its input (--card)") from None

    def embedder(self, role: str = "model") -> Embedder:
        """The Embedder of a role's model: cached by the model's fingerprint (a model with none,
        e.g. one changing in a training loop, is embedded afresh every time)."""
        if role not in self._embedders:
            c = self.data.config
            self._embedders[role] = build_embedder(self.model(role), self.data.device, cache=self.data.store,
                                                   batch_size=c.batch_size, amp=c.amp, progress=self.data.progress)
        return self._embedders[role]

    # ------------------------------------------------------------ embeddings
    def prepare(self, roles: Sequence[str] | None = None) -> None:
        """Under torchrun, compute now, on every rank in the same order, everything the checks
        embed: the DSR outputs and every view of every role (default: those given), each rank
        its shard, met by all-gathers. Afterwards checks hit memoised results, so rank 0 can run
        them alone; the small extra forwards some make (``embed_pixels``) run on rank 0 only.
        In a world of one this does nothing: everything stays lazy."""
        dist, pixels = self.data.dist, self.pixels
        if dist.world == 1:
            return
        roles = list(roles) if roles is not None else [r for r in ROLES if self.has_role(r)]
        for role in roles:
            for view in VIEWS:
                if view == "probe_dsr" and self.data.probes_need_dsr:
                    pixels.dsr_outputs(dist)
                if view == "probe_bicubic":
                    if not pixels.compares_bicubic:
                        continue
                    pixels.bicubic_outputs(dist)
                self._embed_view(role, view, dist)
        for tapped in dist.all_gather_object(pixels.tap.entries()):  # leakage: no image decoded again
            pixels.tap.merge(tapped)
        self.rank_counts = dist.all_gather_object({
            "rank": dist.rank, "super_resolved": pixels.dsr_images,
            "faces_detected": pixels.aligner.detected if self.data.aligning else 0,
            "images_embedded": {role: self.embedder(role).images_embedded for role in roles}})

    def embeddings(self, role: str = "model", view: str = "probe_dsr") -> Embeddings:
        """Raw embeddings of one view for one model, rows aligned with the protocol."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        return self._embed_view(role, view)

    def _embed_view(self, role: str, view: str, dist: Distributed | None = None) -> Embeddings:
        pixels = self.pixels
        if view == "probe_bicubic" and not pixels.compares_bicubic:
            return self._embed_view(role, "probe_dsr", dist)  # the probes' DSR is bicubic
        key = (role, view)
        if key not in self.embedded:
            if view in ("probe_dsr", "probe_bicubic") and not pixels.super_resolved and pixels.stashes_lowres:
                self._embed_view(role, "probe_hr", dist)  # its decode feeds the DSR pass
            proto = self.data.protocol
            subjects = [r.subject for r in proto.gallery] if view == "gallery" else proto.probe_subjects
            pixels.prepare_landmarks(view, dist)
            items = pixels.items(view)
            raw, failures = self.embedder(role).embed(items, f"embedding {view.replace('_', ' ')} [{role}]", dist)
            if self.data.aligning:
                pixels.aligner.release()
            failures = {i: why for i, why in failures.items() if items[i].key != "none"}
            self.embedded[key] = Embeddings(raw, np.asarray(subjects, dtype=str), failures)
        return self.embedded[key]

    def unreadable(self) -> list[tuple[str, str]]:
        """Files an embedding pass could not read, with why: each once, in one order whichever
        view was embedded first (probe_hr runs before probe_dsr to feed it)."""
        roles = list(dict.fromkeys(role for role, _ in self.embedded))
        order = sorted(self.embedded, key=lambda k: (roles.index(k[0]), _PROBLEM_ORDER.index(k[1])))
        found: dict[str, str] = {}
        for role, view in order:
            paths = self.data.view_paths(view)
            for row, why in self.embedded[(role, view)].failures.items():
                found.setdefault(paths[row], why)
        return list(found.items())

    def expect_thresholds(self, thresholds) -> None:
        """Thresholds the checks will ask about, counted in the matching pass of evaluations not
        built yet (an evaluation asked about another one makes one more pass)."""
        c = self.data.config
        c.thresholds = tuple(sorted(set(c.thresholds) | {float(t) for t in thresholds}))

    def evaluation(self, role: str = "model", view: str = "probe_dsr") -> Evaluation:
        """Gallery matching for one model: HR templates vs DSR probes, plus each probe's own HR.
        ``view="probe_bicubic"``: the same probes through plain bicubic instead (the DSR's baseline)."""
        view = self.pixels.probe_view(view, "evaluation")
        memo = role if view == "probe_dsr" else (role, view)
        if memo not in self._evaluations:
            gallery = self.embeddings(role, "gallery")
            probes = self.embeddings(role, view)
            # A probe at full resolution IS its own HR image: comparing the two would report a
            # paired similarity of 1 by construction, so such probes have no HR twin to pair with.
            probe_hr = self.embeddings(role, "probe_hr").raw if self.data.probes_need_dsr else None
            if not gallery.valid.any():
                if len(gallery.failures) < len(gallery.raw):  # decoded, yet no finite embedding
                    raise FacediagError("the model returns NaN or Inf for every gallery image: its weights are "
                                        "broken (weights-integrity names the tensors)")
                raise FacediagError("no gallery image could be read")
            c = self.data.config
            self._evaluations[memo] = build_evaluation(gallery.raw, gallery.subjects, probes.raw,
                                                       probes.subjects, probe_hr, thresholds=c.thresholds,
                                                       device=str(self.data.device), index=c.index)
        return self._evaluations[memo]

    # ------------------------------------------------------ altered inputs
    def embed_pixels(self, role: str, pixels01: torch.Tensor, normalization: Callable | None = None) -> np.ndarray:
        """Raw embeddings of given pixels, bypassing the cache (inputs altered on purpose)."""
        emb = self.embedder(role)
        options = {"normalization": normalization} if normalization else {}
        out = [emb.forward(pixels01[s:s + emb.batch_size], **options) for s in range(0, len(pixels01), emb.batch_size)]
        return np.concatenate(out)

    def embed_sample(self, role: str, pixel_sample: Sample) -> np.ndarray:
        """Raw embeddings of a sample's images as the engine embeds them (unaltered): served from
        this run's gallery embeddings when they exist, else embedded from the sample's pixels
        (no second decode) and kept for the gallery view. A dynamically quantized model embeds
        the sample as one batch of its own, as it does the altered inputs."""
        if dynamic_int8(self.model(role).variant):  # activations quantized per batch: the sample's own batch
            return self.embed_pixels(role, pixel_sample.pixels)
        items = [Item(self.pixels.hr_key(rec.path), _row(pixel_sample.pixels, i))
                 for i, rec in enumerate(pixel_sample.records)]
        raw, _ = self.embedder(role).embed(items, f"embedding the preprocessing sample [{role}]")
        return raw

    # ---------------------------------------------------------- requirements
    def available(self, requirement: str, role: str = "model") -> str | None:
        """None when the input a check of ``role`` requires is there, else why it is not."""
        if requirement == "baseline":
            return None if self.has_role("baseline") else "no --baseline-weights given"
        if requirement == "head":
            loaded = self.model(role)
            if loaded.head is not None:
                return None
            return ("an ONNX graph carries no ArcFace/classifier head" if loaded.format == ONNX_FORMAT
                    else "the checkpoint has no ArcFace/classifier head")
        if requirement == "state_dict":  # an EdgeFace state_dict: its variant layout and init constants
            preset = preset_of(self.model(role))
            if not preset.is_edgeface:
                return (f"not an EdgeFace model (card: {preset.name}): the EdgeFace variant layout and init "
                        "constants do not apply")
            return None if self.model(role).format != ONNX_FORMAT else \
                "an ONNX graph: no EdgeFace state_dict to match keys against or to find init constants in"
        if requirement == "pairs":
            if not self.data.probes_need_dsr:
                return "probes are at full resolution: each is its own HR image, so there is no pair to compare"
            return None if any(p.hr is not None for p in self.data.protocol.probes) else \
                "no probe has its own HR image (paired similarity needs HR/VLR pairs)"
        if requirement == "groups":
            return None if self.data.groups is not None else (
                "no --groups FILE given (a CSV of subject[,image] and attribute columns, e.g. sex, age band)")
        if requirement == "dsr":  # a DSR other than bicubic, to judge against bicubic
            if not self.data.probes_need_dsr:
                return "probes are at full resolution: no DSR runs"
            return None if self.pixels.compares_bicubic else "the probes go through plain bicubic (no --dsr given)"
        return f"unknown requirement {requirement!r}"


def _row(pixels: torch.Tensor, i: int) -> Callable[[], torch.Tensor]:
    return lambda: pixels[i]
