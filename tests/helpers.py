"""Small data builders shared by tests (the fixtures live in conftest.py)."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def face_like(seed: int, size=(112, 112)) -> np.ndarray:
    """A deterministic RGB image with structure (so thumbnails and embeddings differ by seed)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size[::-1], Image.BICUBIC)
    return np.asarray(img)


def write_folders_dataset(root: Path, subjects: int = 4, images: int = 5, size=(112, 112), fmt="png") -> Path:
    for s in range(subjects):
        d = root / f"p{s + 1}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(images):
            Image.fromarray(face_like(1000 * s + i, size)).save(d / f"{i + 1}.{fmt}")
    return root


def write_demo_faces(root: Path, people: int, images: int = 5, seed: int = 5, prefix: str = "p") -> Path:
    """The demo's synthetic colour faces, folders layout (``p00`` ...): small data every check reads."""
    from facediag.demo.faces import draw_subject

    for i in range(people):
        (root / f"{prefix}{i:02d}").mkdir(parents=True)
        for k, img in enumerate(draw_subject(seed, "train", i, images)):
            img.save(root / f"{prefix}{i:02d}" / f"{k}.png")
    return root


def write_paired_dataset(root: Path, subjects: int = 3, images: int = 4, vlr: int = 16) -> Path:
    hr, lr = root / "hr_images", root / f"vlr_images_{vlr}x{vlr}"
    hr.mkdir(parents=True)
    lr.mkdir(parents=True)
    for s in range(subjects):
        for i in range(images):
            name = f"{s + 1:03d}_{i:02d}_crop_128.png"
            img = Image.fromarray(face_like(1000 * s + i))
            img.save(hr / name)
            img.resize((vlr, vlr), Image.BOX).save(lr / name)
    return root


def copy_orl_subset(orl: Path, dest: Path, subjects=range(1, 11)) -> Path:
    import shutil

    for s in subjects:
        shutil.copytree(orl / f"s{s}", dest / f"s{s}")
    return dest


def orl_pairs(n: int = 300, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """n ORL pairs (subject, image, subject, image) in a fixed order, alternately same person and not."""
    import random

    rng = random.Random(seed)
    pairs = []
    for k in range(n):
        s = rng.randint(1, 40)
        if k % 2 == 0:
            a, b = rng.sample(range(1, 11), 2)
            pairs.append((s, a, s, b))
        else:
            t = rng.choice([x for x in range(1, 41) if x != s])
            pairs.append((s, rng.randint(1, 10), t, rng.randint(1, 10)))
    return pairs


def orl_png_on_canvas(path: Path) -> bytes:
    """An ORL face (92×112) centred on a black 112×112 canvas, as PNG bytes (a .bin's image)."""
    import io

    im = Image.open(path).convert("L")
    canvas = Image.new("L", (112, 112))
    canvas.paste(im, ((112 - im.width) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def write_orl_bin(orl_root: Path, path: Path, pairs) -> Path:
    """An insightface-format .bin of these ORL pairs."""
    import pickle

    issame = [s == t for s, _, t, _ in pairs]
    bins = [orl_png_on_canvas(orl_root / f"s{s}/{n}.pgm") for s, a, t, b in pairs for s, n in ((s, a), (t, b))]
    path.write_bytes(pickle.dumps((bins, issame), protocol=pickle.HIGHEST_PROTOCOL))
    return path


def orl_views(orl_root: Path, vlr_size: int = 16):
    """All ORL faces as (HR [N,3,112,112], DSR(bicubic of vlr_size) [N,...], subject ids [N])."""
    import torch
    import torch.nn.functional as F

    from facediag.data.images import downsample, load_face
    from facediag.data.index import index_dataset

    recs = index_dataset(orl_root).records
    hr = torch.stack([load_face(r.path) for r in recs])
    lr = F.interpolate(downsample(hr, vlr_size), size=(112, 112), mode="bicubic", align_corners=False).clamp(0, 1)
    subjects = torch.tensor([int(r.subject.lstrip("s")) for r in recs])
    return hr, lr, subjects


def finetune(weights: Path, orl_root: Path, out: Path, objective: str, steps: int, lr: float = 1e-4,
             batch: int = 32, seed: int = 0) -> Path:
    """A short CPU fine-tune that plants a known failure; saved as an official state_dict.

    objective: "paired" (1 − cos(f(DSR_i), f(HR_i))) or "instance" (instance InfoNCE)."""
    import torch

    from facediag.data.images import normalize
    from facediag.models.checkpoint import load_checkpoint, save_state_dict
    from facediag.train.losses import instance_infonce_loss, paired_cosine_loss

    torch.manual_seed(seed)
    model = load_checkpoint(weights).model.train()
    hr, lr_views, _ = orl_views(orl_root)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(len(hr), generator=gen)[:batch]
        f_lr, f_hr = model(normalize(lr_views[idx])), model(normalize(hr[idx]))
        loss = paired_cosine_loss(f_lr, f_hr) if objective == "paired" else instance_infonce_loss(f_lr, f_hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_state_dict(model.eval(), out)
    return out


def leaky_copy(orl_root: Path, dest: Path) -> Path:
    """ORL s1–s10 with two probes that are the enrolled image 1 again: one byte-identical,
    one shifted by a pixel and saved as JPEG."""
    copy_orl_subset(orl_root, dest)
    (dest / "s1" / "7.pgm").write_bytes((dest / "s1" / "1.pgm").read_bytes())
    img = np.asarray(Image.open(dest / "s2" / "1.pgm"))
    shifted = img.copy()
    shifted[:, 1:] = img[:, :-1]  # one pixel to the right, edge column repeated
    (dest / "s2" / "8.pgm").unlink()
    Image.fromarray(shifted).save(dest / "s2" / "8.jpg", quality=90)
    return dest


def loaded_model(module, **fields):
    """An in-memory model with every field of facediag.models.loaded.LoadedModel."""
    from types import SimpleNamespace

    from facediag.models.presets import EDGEFACE

    base = dict(model=module, variant="test", format="module", path="memory", sha256=None,
                parameters=sum(p.numel() for p in module.parameters()), matched_fraction=1.0, missing_keys=[],
                unexpected_keys=[], head=None, label_map=None, preset=EDGEFACE, card=None)
    return SimpleNamespace(**{**base, **fields})


def write_pattern_faces(root: Path, subjects: int = 10, images: int = 7, seed: int = 0) -> Path:
    """Each subject a random 4×4 colour pattern, each image that pattern plus noise. Every
    pattern has the same mean colour, so a model that sees only the mean cannot tell people apart."""
    rng = np.random.default_rng(seed)
    for s in range(subjects):
        pattern = rng.uniform(-100, 100, (4, 4, 3))
        pattern += 128 - pattern.mean(axis=(0, 1))
        (root / f"p{s}").mkdir(parents=True)
        for i in range(images):
            img = np.clip(np.kron(pattern, np.ones((28, 28, 1))) + rng.normal(0, 25, (112, 112, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / f"p{s}" / f"{i}.png")
    return root


def pooled(pool: int, **fields):
    """A pixel embedder (average pooling): no weights to train, and B can be made to see less."""
    return loaded_model(nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten()), variant="pixels", path=f"pool{pool}",
                        **fields)


def session_over(root: Path, a, b=None):
    """A Session over models in memory: ``a`` as the model, ``b`` (if given) as the baseline."""
    from facediag.session import Session, SessionConfig

    models = {"model": a} if b is None else {"model": a, "baseline": b}
    return Session(SessionConfig(data=root, use_cache=False, progress=False), models=models)


def refused(path, **kwargs) -> str:
    """load_checkpoint(path) must refuse with one CheckpointError line naming the file."""
    import pytest

    from facediag.errors import CheckpointError
    from facediag.models.checkpoint import load_checkpoint

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path.name + ": ")
    return message


def misaligned_copy(src: Path, dest: Path, how: str, subjects=range(1, 11), per_subject: int = 4,
                    seed: int = 0) -> Path:
    """ORL faces (folders layout) deliberately misaligned: "rotate" 20°, "zoom" out to 0.6 of the
    canvas, "shift" by (18, 12) px, or "paste" at a random place in a 250 px noise canvas; "none"
    writes them unmoved (the control). All but "paste" work on facediag's own 112 canvas, as the
    model would see the face."""
    from facediag.data.images import load_face

    rng = np.random.default_rng(seed)
    for s in subjects:
        (dest / f"s{s}").mkdir(parents=True, exist_ok=True)
        for i in range(1, per_subject + 1):
            path = src / f"s{s}" / f"{i}.pgm"
            if how == "paste":
                face = np.asarray(Image.open(path).convert("RGB"))
                big = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
                y, x = rng.integers(0, 250 - face.shape[0]), rng.integers(0, 250 - face.shape[1])
                big[y:y + face.shape[0], x:x + face.shape[1]] = face
                out = big
            else:
                canvas = (load_face(path).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                out = np.zeros_like(canvas)
                if how == "none":  # the control: the same faces, written the same way, unmoved
                    out = canvas
                elif how == "rotate":
                    out = np.asarray(Image.fromarray(canvas).rotate(20, resample=Image.BILINEAR))
                elif how == "zoom":
                    small = np.asarray(Image.fromarray(canvas).resize((67, 67), Image.BILINEAR))
                    out[22:89, 22:89] = small
                elif how == "shift":
                    out[12:, 18:] = canvas[:100, :94]
                else:
                    raise ValueError(how)
            Image.fromarray(out).save(dest / f"s{s}" / f"{i}.png")
    return dest


def unaligned_copy(src: Path, dest: Path, subjects=range(1, 41), per_subject: int = 10, seed: int = 0) -> Path:
    """ORL as users often feed it, unaligned: each face zoomed out by 1/1.6, turned by up to ±20°
    and pasted at a random place in a 160 px grey canvas (folders layout, PNG)."""
    rng = np.random.default_rng(seed)
    for s in subjects:
        (dest / f"s{s}").mkdir(parents=True, exist_ok=True)
        for i in range(1, per_subject + 1):
            im = Image.open(src / f"s{s}" / f"{i}.pgm").convert("L")
            im = im.resize((round(im.width / 1.6), round(im.height / 1.6)), Image.BILINEAR)
            im = im.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR, expand=True, fillcolor=128)
            canvas = Image.new("L", (160, 160), 128)
            canvas.paste(im, (int(rng.integers(0, 161 - im.width)), int(rng.integers(0, 161 - im.height))))
            canvas.save(dest / f"s{s}" / f"{i}.png")
    return dest


def colour_copy(src: Path, dest: Path, subjects=range(1, 41), per_subject: int = 10, bgr: bool = False) -> Path:
    """ORL faces made colour photos: the grey levels mapped onto a skin tone (red above green above
    blue, as skin is in RGB), saved as RGB or, with ``bgr``, with red and blue swapped as an OpenCV
    array saved by PIL would be."""
    tone = np.array([1.0, 0.78, 0.62])
    for s in subjects:
        (dest / f"s{s}").mkdir(parents=True, exist_ok=True)
        for i in range(1, per_subject + 1):
            grey = np.asarray(Image.open(src / f"s{s}" / f"{i}.pgm").convert("L"), dtype=np.float64)
            rgb = np.clip(grey[..., None] * tone, 0, 255).round().astype(np.uint8)
            Image.fromarray(rgb[..., ::-1].copy() if bgr else rgb).save(dest / f"s{s}" / f"{i}.png")
    return dest


# ------------------------------------------- a non-EdgeFace embedder with a model card (tests of cards)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CARD = f"""name = "tiny-bgr"
family = "tinynet"
input_size = [3, 96, 96]
mean = {IMAGENET_MEAN}
std = {IMAGENET_STD}
channel_order = "BGR"
embedding_dim = 512
threshold = 0.3
flip = false
"""


def tiny_net():
    """Not an EdgeFace: two convs and a 512-d linear layer, for 3×96×96 input (112 px input fails:
    the linear layer's width no longer fits)."""
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv1 = torch.nn.Conv2d(3, 16, 5, stride=2, padding=2)   # 96 -> 48
            self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)  # 48 -> 24
            self.fc = torch.nn.Linear(32 * 6 * 6, 512)

        def forward(self, x):
            x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            return self.fc(torch.nn.functional.avg_pool2d(x, 4).flatten(1))

    return TinyNet().eval()


def card_pixels(pixels01):
    """CARD's preprocessing written out by hand: BGR, 96×96, ImageNet mean/std."""
    import torch

    x = torch.nn.functional.interpolate(pixels01.flip(1), size=(96, 96), mode="bilinear", antialias=True)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def traced_tiny_net(path: Path) -> Path:
    """tiny_net() traced to a TorchScript file (no card written)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's deprecation notice for jit.trace
        torch.jit.trace(tiny_net(), torch.zeros(1, 3, 96, 96)).save(str(path))
    return path


# ------------------------------------------- planted failures shared by tests and benchmarks
# Mislabelled ORL images: 8 people each have one gallery image (1-3) that is the next person's photo.
CYCLE = [3, 7, 12, 18, 22, 29, 33, 38]
# Probe files exchanged between two people: (a, b, image), images 4-10 are probes.
PROBE_SWAPS = [(5, 9, 6), (14, 27, 7), (31, 36, 8), (2, 20, 9), (11, 25, 4), (16, 39, 10)]


def plant_gallery_swaps(orl, dest):
    """ORL copied, with CYCLE's gallery images replaced; returns {"s3/1.pgm": "s7", ...}."""
    shutil.copytree(orl, dest)
    planted = {}
    for k, s in enumerate(CYCLE):
        t, img = CYCLE[(k + 1) % len(CYCLE)], f"{k % 3 + 1}.pgm"
        shutil.copy(orl / f"s{t}" / img, dest / f"s{s}" / img)
        planted[f"s{s}/{img}"] = f"s{t}"
    return planted


def plant_probe_swaps(orl, dest):
    """ORL copied, with PROBE_SWAPS' probe files exchanged; returns {"s9/6.pgm": "s5", ...}."""
    shutil.copytree(orl, dest)
    planted = {}
    for a, b, i in PROBE_SWAPS:
        shutil.copy(orl / f"s{a}" / f"{i}.pgm", dest / f"s{b}" / f"{i}.pgm")
        shutil.copy(orl / f"s{b}" / f"{i}.pgm", dest / f"s{a}" / f"{i}.pgm")
        planted[f"s{b}/{i}.pgm"], planted[f"s{a}/{i}.pgm"] = f"s{a}", f"s{b}"
    return planted


class BlurDSR(nn.Module):
    """A "super-resolution" network worse than bicubic: bicubic, then a 9×9 Gaussian blur (σ 2.5)."""

    def __init__(self, sigma: float = 2.5, size: int = 9):
        super().__init__()
        x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
        g = g / g.sum()
        self.register_buffer("kernel", torch.outer(g, g).expand(3, 1, size, size).contiguous())
        self.pad = size // 2

    def forward(self, x):
        x = F.interpolate(x, size=(112, 112), mode="bicubic", align_corners=False)
        x = F.pad(x, (self.pad, self.pad, self.pad, self.pad), mode="replicate")
        return F.conv2d(x, self.kernel, groups=3)


class BicubicNet(nn.Module):
    """A DSR network exactly as good as bicubic: it is bicubic."""

    def forward(self, x):
        return F.interpolate(x, size=(112, 112), mode="bicubic", align_corners=False)


def script_dsr(module, path):
    with warnings.catch_warnings():  # torch.jit's deprecation notice; users' DSRs ship as TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(module).save(str(path))
    return path
