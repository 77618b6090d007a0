"""A miniature IJB-format release written by tests: loose crops that are a KNOWN similarity
transform of an aligned 112×112 face, with landmarks = that transform applied to the ArcFace
template points, so alignment must undo a known rotation, scale and shift."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from facediag.data.landmarks import TEMPLATE as ARCFACE_TEMPLATE

CROP = 240  # loose crops are 240×240


def known_transform(i: int):
    """A different rotation (−20°…+20°), scale (1.1–1.4) and shift per image index, turning the
    aligned face about its centre into the loose crop (all of it stays inside the crop)."""
    from skimage.transform import SimilarityTransform

    rotation, scale = np.deg2rad(10 * ((i % 5) - 2)), 1.1 + 0.15 * (i % 3)
    c, s = scale * np.cos(rotation), scale * np.sin(rotation)
    centre = np.array([120.0 + 4 * (i % 4), 116.0 + 3 * (i % 3)])
    shift = centre - np.array([[c, -s], [s, c]]) @ np.array([56.0, 56.0])
    return SimilarityTransform(rotation=rotation, scale=scale, translation=shift)


def loose_crop(aligned: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(the loose crop HxWx3 uint8, its 5 landmarks) of an aligned 112×112×3 face."""
    from skimage.transform import warp

    t = known_transform(i)
    crop = warp(aligned, t.inverse, output_shape=(CROP, CROP), order=1, preserve_range=True)
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8), t(ARCFACE_TEMPLATE)


def orl_aligned(orl: Path, person: int, image: int) -> np.ndarray:
    """ORL s<person>/<image>.pgm padded centred to 112×112 (facediag's own rule), RGB uint8."""
    im = Image.open(orl / f"s{person}" / f"{image}.pgm").convert("L")
    canvas = Image.new("L", (112, 112))
    canvas.paste(im, ((112 - im.width) // 2, 0))
    return np.repeat(np.asarray(canvas)[:, :, None], 3, axis=2)


# Per person: template k -> [(image, media offset)]: 2–4 images in 1–2 media.
TEMPLATES = {1: [(1, 0), (2, 0)], 2: [(3, 0), (4, 1), (5, 1)], 3: [(6, 0), (7, 0), (8, 1), (9, 1)]}


def write_ijb_tree(root: Path, faces, people, target: str = "IJBC", one_to_n: bool = True) -> Path:
    """Write root/meta/* and root/loose_crop/* for ``people``; ``faces(person, image)`` gives the
    aligned 112×112×3 uint8 face. Template id = 10·person + k, media id = 100·person + 10·k + offset,
    detector score = 0.5 + 0.05·image. Pairs: every two templates. 1:N: template 1 of each person
    enrols; people of the first half in G1 (S1), the rest in G2 (S2); templates 2 and 3 probe."""
    t = target.lower()
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "loose_crop").mkdir(exist_ok=True)
    tid_mid, pts, all_templates = [], [], []
    for p in people:
        for k, images in TEMPLATES.items():
            tid = 10 * p + k
            all_templates.append((tid, p))
            for image, offset in images:
                name = f"{p}_{image}.png"
                if not (root / "loose_crop" / name).exists():
                    crop, lmk = loose_crop(faces(p, image), image)
                    Image.fromarray(crop).save(root / "loose_crop" / name)
                else:
                    lmk = known_transform(image)(ARCFACE_TEMPLATE)
                tid_mid.append(f"{name} {tid} {100 * p + 10 * k + offset}")
                pts.append(" ".join([name, *(f"{v:.4f}" for v in lmk.ravel()), f"{0.5 + 0.05 * image:.3f}"]))
    (root / "meta" / f"{t}_face_tid_mid.txt").write_text("\n".join(tid_mid) + "\n")
    (root / "meta" / f"{t}_name_5pts_score.txt").write_text("\n".join(pts) + "\n")
    pairs = [f"{a} {b} {int(pa == pb)}" for i, (a, pa) in enumerate(all_templates)
             for b, pb in all_templates[i + 1:]]
    (root / "meta" / f"{t}_template_pair_label.txt").write_text("\n".join(pairs) + "\n")
    if one_to_n:
        people = list(people)
        half = len(people) // 2
        names = ("G1", "G2") if target == "IJBC" else ("S1", "S2")
        for name, members in zip(names, (people[:half], people[half:])):
            (root / "meta" / f"{t}_1N_gallery_{name}.csv").write_text(
                "TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + "".join(f"{10 * p + 1},{p},{p}_1.png\n" for p in members))
        (root / "meta" / f"{t}_1N_probe_mixed.csv").write_text(
            "TEMPLATE_ID,SUBJECT_ID\n" + "".join(f"{10 * p + k},{p}\n" for p in people for k in (2, 3)))
    return root
