"""A miniature TinyFace test split in the released layout, from ORL faces (AT&T) and small
synthetic images: tinyface/Testing_Set/{Probe,Gallery_Match,Gallery_Distractor}/, the two
.mat lists written with scipy.io.savemat, and an aligned copy (aligned_pad_0.1_pad_high/)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from helpers import face_like

ALIGNED = "aligned_pad_0.1_pad_high"
PROBE_SIDES = (12, 16, 20, 28, 40, 56)   # the probes' widths (their shorter side), cycled
# Probes: images 1 and 2 of ORL s1–s10, and s11/1 (nobody in the gallery: left out of the closed set).
PROBES = [(s, i) for s in range(1, 11) for i in (1, 2)] + [(11, 1)]
# Gallery_Match: 1–3 further images of s1–s10.
MATCH = [(s, i) for s in range(1, 11) for i in range(3, 4 + s % 3)]
# Distractors: ORL s21–s30 (3 images each), s1's 10th image filed as "1_99" (a face of person 1
# that belongs to nobody, as every distractor), and five synthetic images.
DISTRACTOR_FACES = [(s, i) for s in range(21, 31) for i in range(1, 4)] + [(1, 10)]
N_SYNTHETIC = 5


def orl_canvas(orl: Path, person: int, image: int) -> Image.Image:
    """ORL s<person>/<image>.pgm centred on a black 112×112 canvas (the 'aligned' face), RGB."""
    im = Image.open(orl / f"s{person}" / f"{image}.pgm").convert("L")
    canvas = Image.new("L", (112, 112))
    canvas.paste(im, ((112 - im.width) // 2, 0))
    return canvas.convert("RGB")


def tiny(orl: Path, person: int, image: int, width: int) -> Image.Image:
    """The face as a native tiny original: ORL's 92×112 shrunk to ``width`` wide (aspect kept)."""
    im = Image.open(orl / f"s{person}" / f"{image}.pgm").convert("RGB")
    return im.resize((width, round(width * 112 / 92)), Image.BICUBIC)


def distractor_name(k: int) -> str:
    if k < len(DISTRACTOR_FACES):
        s, i = DISTRACTOR_FACES[k]
        return "1_99.jpg" if (s, i) == (1, 10) else f"{1000 + s}_{i}.jpg"
    return f"9{k:03d}_1.jpg"


def write_tinyface_tree(root: Path, orl: Path, *, aligned: bool = True) -> Path:
    """The miniature under ``root`` (returned): 21 probes, 20 matched gallery images, 36 distractors."""
    testing = root / "tinyface" / "Testing_Set"
    dirs = {sub: testing / sub for sub in ("Probe", "Gallery_Match", "Gallery_Distractor")}
    adirs = {sub: root / ALIGNED / sub for sub in dirs}
    for d in [*dirs.values(), *(adirs.values() if aligned else [])]:
        d.mkdir(parents=True, exist_ok=True)

    def put(sub: str, name: str, original: Image.Image, face: Image.Image) -> None:
        original.save(dirs[sub] / name, quality=90)
        if aligned:  # the aligned copy keeps the stem; PNG, so the suffix differs from the original's
            face.save(adirs[sub] / (Path(name).stem + ".png"))

    probe_names = []
    for k, (s, i) in enumerate(PROBES):
        name = f"{s}_{i}.jpg"
        put("Probe", name, tiny(orl, s, i, PROBE_SIDES[k % len(PROBE_SIDES)]), orl_canvas(orl, s, i))
        probe_names.append(name)
    match_names = []
    for s, i in MATCH:
        name = f"{s}_{i}.jpg"
        put("Gallery_Match", name, tiny(orl, s, i, 24), orl_canvas(orl, s, i))
        match_names.append(name)
    for k in range(len(DISTRACTOR_FACES) + N_SYNTHETIC):
        if k < len(DISTRACTOR_FACES):
            s, i = DISTRACTOR_FACES[k]
            original, face = tiny(orl, s, i, 20), orl_canvas(orl, s, i)
        else:
            face = Image.fromarray(face_like(500 + k))
            original = face.resize((18, 22), Image.BICUBIC)
        put("Gallery_Distractor", distractor_name(k), original, face)
    (dirs["Gallery_Distractor"] / "Thumbs.db").write_bytes(b"not an image")  # passed over, as the reference does
    write_lists(testing, probe_names, match_names)
    return root


def cell(names) -> np.ndarray:
    """A MATLAB cell array (N×1) of strings, as the release stores its name lists."""
    out = np.empty((len(names), 1), dtype=object)
    for k, n in enumerate(names):
        out[k, 0] = n
    return out


def write_lists(testing: Path, probe_names, match_names, *, probe_ids=None, match_ids=None) -> None:
    from scipy.io import savemat

    def ids(names):
        return np.array([[float(n.split("_")[0])] for n in names])

    savemat(testing / "gallery_match_img_ID_pairs.mat",
            {"gallery_set": cell(match_names), "gallery_ids": ids(match_names) if match_ids is None else match_ids})
    savemat(testing / "probe_img_ID_pairs.mat",
            {"probe_set": cell(probe_names), "probe_ids": ids(probe_names) if probe_ids is None else probe_ids})
