"""Synthetic identities: procedurally drawn cartoon faces, deterministic from a seed.

Each identity is a parameter vector (face shape, skin tone, hair colour and style, eyes,
brows, nose, mouth, ears, optional beard / glasses / hat / hair streak / earrings / eye
shadow / lipstick / freckles / mole / blush). Each image of an identity varies by pose
(rotation, yaw, pitch), shift, scale, expression, clothing, background, lighting gradient,
colour cast, blur and noise, so a model has to learn who it is, not which picture it is.
Faces are drawn at 2x and box-downsampled (antialiasing) to 112x112 RGB PNG, one folder
per subject: ``root/<split>/<subject>/<n>.png``.

Every identity and every image has its own random stream keyed by (seed, split, subject,
image), so the bytes do not depend on the number of worker processes or their order.
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facediag.errors import FacediagError

SIZE = 112
_SS = 2  # supersampling factor: drawn at 224, box-reduced to 112
# Bump when the drawing changes, so a cached face set from an older version is redrawn.
GENERATOR_VERSION = 2
MARKER = "faces.json"
SPLITS = {"train": ("t", 0), "heldout": ("h", 1)}  # folder -> (subject prefix, stream id)

_SKIN = np.array([(255, 226, 200), (243, 200, 160), (226, 174, 120), (198, 138, 86),
                  (160, 102, 60), (112, 70, 42), (80, 50, 34)], float)
_HAIR = np.array([(28, 24, 24), (62, 40, 28), (104, 70, 42), (136, 62, 34), (188, 104, 48),
                  (222, 190, 118), (236, 224, 196), (146, 144, 144), (222, 222, 222),
                  (54, 84, 176), (214, 96, 156), (64, 132, 86), (112, 58, 146)], float)
_HAIR_P = np.array([14, 14, 12, 6, 5, 8, 3, 5, 3, 2, 2, 1.5, 1.5]) / 77.0
_IRIS = np.array([(96, 58, 30), (46, 30, 22), (66, 116, 186), (78, 136, 78), (124, 136, 146),
                  (138, 108, 48)], float)
HAIR_STYLES = ("bald", "short", "long", "bun", "afro", "mohawk", "bob", "spiky")
NOSES = ("line", "triangle", "round", "button")
BEARDS = ("full", "goatee", "moustache", "chinstrap")
HATS = ("beanie", "cap", "headband")
_LIPSTICK = np.array([(196, 30, 58), (222, 93, 131), (120, 40, 90), (150, 70, 50), (230, 120, 110)], float)


# --------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class Identity:
    """Who a face is: every number here stays fixed across that person's images."""

    half_w: float          # face half-width (112-px units)
    half_h: float          # face half-height
    squareness: float      # superellipse exponent: 2 = oval, 4 = square jaw
    taper: float           # how much the jaw narrows towards the chin
    skin: tuple
    hair: tuple
    hair_style: str
    hairline: float        # hairline height as a fraction of half_h above centre
    part: float            # -1..1 where the fringe dips (side part)
    hair_volume: float
    eye_y: float           # eye height (fraction of half_h above centre)
    eye_gap: float         # eye centre distance from the midline (fraction of half_w)
    eye_rx: float
    eye_ry: float          # relative to eye_rx
    iris: tuple
    iris_r: float          # relative to eye_ry
    brow_thick: float
    brow_arch: float
    brow_slant: float
    brow_gap: float        # brow height above the eye
    nose: str
    nose_len: float
    nose_w: float
    mouth_y: float         # below centre (fraction of half_h)
    mouth_w: float         # fraction of half_w
    lip_thick: float
    lip: tuple
    rest_smile: float
    ear_r: float
    ear_out: float
    beard: str | None
    glasses: str | None    # "round" | "square"
    glasses_color: tuple
    mole: tuple | None     # (x, y) relative to the face centre, in half-axes
    blush: float           # 0 = none
    # Coloured accessories and make-up: independent identity cues that survive low
    # resolution, so a model has more than skin and hair colour to tell people apart.
    hat: tuple | None      # (style, colour); style "beanie" | "cap" | "headband"
    streak: tuple | None   # a dyed hair streak's colour
    earrings: tuple | None
    eyeshadow: tuple | None
    freckles: tuple | None  # ((x, y), ...) relative to the face centre, in half-axes


def _jitter(rng, color, amount):
    return tuple(int(v) for v in np.clip(np.asarray(color) + rng.normal(0, amount, 3), 0, 255))


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw one person. Continuous parameters make neighbours close: identities are
    distinguishable, but not trivially (face shape and colours survive 16 px; eyes,
    brows and moles do not)."""
    t = rng.uniform(0, len(_SKIN) - 1)
    i = int(t)
    skin = _SKIN[i] + (_SKIN[min(i + 1, len(_SKIN) - 1)] - _SKIN[i]) * (t - i)
    undertone = rng.uniform(-1, 1) * np.array([8, -6, 6])  # pink (+) or olive (-)
    skin = _jitter(rng, skin + undertone, 6)
    hair = _jitter(rng, _HAIR[rng.choice(len(_HAIR), p=_HAIR_P)], 14)
    lip = tuple(int(v) for v in np.clip(np.asarray(skin) * rng.uniform(0.45, 0.7)
                                          + np.array([150, 50, 60]) * rng.uniform(0.2, 0.5), 0, 255))
    style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[.1, .24, .18, .08, .08, .05, .17, .1])]
    idt = Identity(
        half_w=rng.uniform(26, 35), half_h=rng.uniform(34, 44),
        squareness=rng.uniform(2.0, 4.2), taper=rng.uniform(0.0, 0.4),
        skin=skin, hair=hair, hair_style=style,
        hairline=rng.uniform(0.35, 0.75), part=rng.uniform(-1, 1), hair_volume=rng.uniform(0.1, 0.35),
        eye_y=rng.uniform(0.02, 0.25), eye_gap=rng.uniform(0.3, 0.5),
        eye_rx=rng.uniform(4.2, 7.0), eye_ry=rng.uniform(0.45, 0.8),
        iris=_jitter(rng, _IRIS[rng.integers(len(_IRIS))], 10), iris_r=rng.uniform(0.55, 0.9),
        brow_thick=rng.uniform(1.0, 3.4), brow_arch=rng.uniform(-0.5, 2.5),
        brow_slant=rng.uniform(-2.5, 2.5), brow_gap=rng.uniform(3.5, 8.0),
        nose=NOSES[rng.integers(len(NOSES))], nose_len=rng.uniform(0.18, 0.42), nose_w=rng.uniform(3, 8),
        mouth_y=rng.uniform(0.38, 0.6), mouth_w=rng.uniform(0.28, 0.52), lip_thick=rng.uniform(1.2, 4.0),
        lip=lip, rest_smile=rng.uniform(-0.4, 0.6),
        ear_r=rng.uniform(4.5, 8.5), ear_out=rng.uniform(0.0, 3.5),
        beard=BEARDS[rng.integers(len(BEARDS))] if rng.random() < 0.22 else None,
        glasses=("round", "square")[rng.integers(2)] if rng.random() < 0.2 else None,
        glasses_color=_jitter(rng, (rng.integers(0, 3) * 90,) * 3, 30),
        mole=(rng.uniform(-0.6, 0.6), rng.uniform(-0.1, 0.6)) if rng.random() < 0.2 else None,
        blush=rng.uniform(0.1, 0.35) if rng.random() < 0.3 else 0.0,
        hat=((HATS[rng.integers(len(HATS))], _vivid(rng)) if rng.random() < 0.22 else None),
        streak=_vivid(rng) if rng.random() < 0.25 else None,
        earrings=_vivid(rng) if rng.random() < 0.2 else None,
        eyeshadow=_vivid(rng) if rng.random() < 0.2 else None,
        freckles=(tuple((rng.uniform(-0.6, 0.6), rng.uniform(0.05, 0.35)) for _ in range(rng.integers(6, 12)))
                  if rng.random() < 0.15 else None),
    )
    if rng.random() < 0.3:  # lipstick
        idt = replace(idt, lip=_jitter(rng, _LIPSTICK[rng.integers(len(_LIPSTICK))], 12))
    return idt


def _vivid(rng) -> tuple:
    """A saturated colour: one channel high, one low, one anywhere."""
    c = rng.permutation([rng.uniform(170, 250), rng.uniform(10, 70), rng.uniform(10, 250)])
    return tuple(int(v) for v in c)


# ----------------------------------------------------------------------------- drawing
class _Pen:
    """Draws in 112-px face units through the picture's pose (rotation, scale, shift) onto
    the supersampled canvas. Transforming the coordinates instead of the finished image
    is several times faster and keeps edges sharp; ellipses become polygons for that."""

    _circles: dict[int, np.ndarray] = {}

    def __init__(self, img, theta=0.0, scale=1.0, shift=(0.0, 0.0)):
        self.d = ImageDraw.Draw(img)
        self.k = scale * _SS
        c = SIZE / 2
        cos, sin = math.cos(theta) * self.k, math.sin(theta) * self.k
        # out = SS * (c + shift) + k * R(theta) @ (p - c)
        self.m = np.array([[cos, -sin, _SS * (c + shift[0]) - (cos - sin) * c],
                           [sin, cos, _SS * (c + shift[1]) - (sin + cos) * c]])

    def _xy(self, pts) -> list[float]:
        p = np.asarray(pts, dtype=float)
        return (p @ self.m[:, :2].T + self.m[:, 2]).ravel().tolist()

    @classmethod
    def _circle(cls, n: int) -> np.ndarray:
        if n not in cls._circles:
            t = np.linspace(0, 2 * math.pi, n, endpoint=False)
            cls._circles[n] = np.stack([np.cos(t), np.sin(t)], 1)
        return cls._circles[n]

    def ellipse(self, cx, cy, rx, ry, fill, outline=None, width=1.0):
        n = int(min(48, max(10, (rx + ry) * self.k)))  # enough vertices to look round
        pts = self._circle(n) * (rx, ry) + (cx, cy)
        self.poly(pts, fill, outline, width)

    def poly(self, pts, fill, outline=None, width=1.0):
        self.d.polygon(self._xy(pts), fill=fill, outline=outline,
                       width=max(1, round(width * self.k)) if outline else 0)

    def line(self, pts, fill, width):
        self.d.line(self._xy(pts), fill=fill, width=max(1, round(width * self.k)), joint="curve")


def _shade(color, f):
    return tuple(int(min(255, max(0, c * f))) for c in color)


def _outline(cx, cy, a, b, n, taper, lo=0.0, hi=2 * math.pi, k=40) -> np.ndarray:
    """Points of the head outline: a superellipse whose lower half narrows to the chin."""
    t = np.linspace(lo, hi, k, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2 / n)
    y = b * np.sign(s) * np.abs(s) ** (2 / n)
    x *= 1 - taper * np.clip(y / b, 0, None) ** 1.5  # below the centre line (y grows downwards)
    return np.stack([cx + x, cy + y], 1)


_U = np.linspace(-1, 1, 9)


def _curve(x0, x1, y, bend) -> np.ndarray:
    """A parabola from x0 to x1 at height y, dipping by ``bend`` in the middle."""
    return np.stack([x0 + (_U + 1) / 2 * (x1 - x0), y + bend * (1 - _U ** 2)], 1)


def _join(*parts) -> np.ndarray:
    """One polygon from several point runs (lists of pairs or [n, 2] arrays)."""
    return np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in parts])


def render_face(idt: Identity, rng: np.random.Generator) -> Image.Image:  # noqa: C901 - the demo's face drawing
    """One 112x112 RGB picture of ``idt`` under random pose, expression and conditions."""
    bg = tuple(int(v) for v in rng.integers(20, 236, 3))
    img = Image.new("RGB", (SIZE * _SS, SIZE * _SS), bg)
    pen = _Pen(img, theta=math.radians(rng.uniform(-10, 10)), scale=rng.uniform(0.9, 1.1),
               shift=tuple(rng.uniform(-6, 6, 2)))
    cx, cy = SIZE / 2, SIZE / 2 - 2
    a, b = idt.half_w, idt.half_h
    yaw = rng.uniform(-0.07, 0.07)    # features slide sideways, the face narrows a little
    pitch = rng.uniform(-0.04, 0.04)
    a_eff = a * (1 - abs(yaw) * 0.8)
    fx, fy = cx + yaw * a * 2.2, cy + pitch * b * 2  # centre of the inner features
    skin, hair = idt.skin, idt.hair

    # Background clutter and clothes: nuisance the model must ignore.
    if rng.random() < 0.5:
        pen.ellipse(rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(8, 30), rng.uniform(8, 30),
                    tuple(int(v) for v in rng.integers(20, 236, 3)))
    cloth = tuple(int(v) for v in rng.integers(10, 246, 3))
    pen.ellipse(cx, cy + b + 38, a + 30, 34, cloth)
    pen.poly([(cx - a * 0.45, cy + b * 0.5), (cx + a * 0.45, cy + b * 0.5),
              (cx + a * 0.5, cy + b + 8), (cx - a * 0.5, cy + b + 8)], _shade(skin, 0.88))

    # Hair behind the head.
    vol = idt.hair_volume * a
    if idt.hair_style == "long":
        pen.poly(_join(_outline(cx, cy - 4, a + vol + 2, b + 2, 2.5, 0, math.pi, 2 * math.pi),
                       [(cx + a + vol + 4, cy + b + 10), (cx - a - vol - 4, cy + b + 10)]), hair)
    elif idt.hair_style == "bob":
        pen.poly(_join(_outline(cx, cy - 3, a + vol + 1, b + 1, 2.8, 0, math.pi, 2 * math.pi),
                       [(cx + a + vol, cy + b * 0.45), (cx - a - vol, cy + b * 0.45)]), hair)
    elif idt.hair_style == "afro":
        r = a + vol * 2.5 + 4
        pen.ellipse(cx, cy - b * 0.35, r, r * 0.95, hair)
    elif idt.hair_style == "bun":
        pen.ellipse(cx, cy - b - 6, a * 0.38, a * 0.34, hair)

    # Ears, then the face.
    for side in (-1, 1):
        ex = cx + side * (a_eff + idt.ear_out - 1.5)
        ey = fy - b * idt.eye_y + 6
        pen.ellipse(ex, ey, idt.ear_r * 0.7, idt.ear_r, _shade(skin, 0.9))
        pen.ellipse(ex, ey, idt.ear_r * 0.35, idt.ear_r * 0.6, _shade(skin, 0.75))
        if idt.earrings:
            pen.ellipse(ex, ey + idt.ear_r + 1, 1.8, 1.8, idt.earrings)
    face = _outline(cx, cy, a_eff, b, idt.squareness, idt.taper)
    pen.poly(face, skin)

    # Hair on top: the head outline, grown by the volume, cut at the hairline.
    if idt.hair_style != "bald":
        top = _outline(cx, cy, a_eff + vol * 0.6 + 1, b + vol * 0.8 + 1, idt.squareness, 0,
                       math.pi, 2 * math.pi, 24)
        hl = cy - b * idt.hairline
        dip = idt.part * a * 0.5
        line = [(cx + a_eff + 1, hl + 8), (cx + dip, hl + 3 + 3 * abs(idt.part)), (cx - a_eff - 1, hl + 8)]
        if idt.hair_style == "mohawk":
            pen.poly([(cx - 5, cy - b - 14), (cx + 5, cy - b - 14), (cx + 6, hl), (cx - 6, hl)], hair)
        else:
            pen.poly(_join(top, line), hair)
        if idt.hair_style == "spiky":
            for k in range(7):
                x = cx - a_eff + (k + 0.5) * 2 * a_eff / 7
                pen.poly([(x - 5, cy - b + 2), (x + 5, cy - b + 2), (x + rng.uniform(-2, 2), cy - b - 10)], hair)
        if idt.streak and idt.hair_style not in ("mohawk", "afro"):
            x0, top_y = cx + dip * 0.6, cy - b - vol * 0.8
            pen.poly([(x0 - 3, hl + 5), (x0 + 3, hl + 5), (x0 + 6, top_y + 2), (x0 - 1, top_y + 2)], idt.streak)
        if idt.hair_style == "afro":
            for k in range(9):
                t = math.pi * (1.05 + 0.9 * k / 8)
                pen.ellipse(cx + (a + vol) * math.cos(t), cy - b * 0.35 + (b + vol) * math.sin(t), 6, 6,
                            _shade(hair, 0.85))

    if idt.hat:
        style, colour = idt.hat
        if style == "headband":
            y = cy - b * idt.hairline + 3
            pen.poly([(cx - a_eff - 2, y - 3), (cx + a_eff + 2, y - 3), (cx + a_eff + 2, y + 2),
                      (cx - a_eff - 2, y + 2)], colour)
        else:
            crown = _outline(cx, cy, a_eff + 3, b + 4, 2.6, 0, math.pi, 2 * math.pi, 24)
            rim = cy - b * 0.45
            pen.poly(_join(crown[crown[:, 1] <= rim], [(cx + a_eff + 3, rim), (cx - a_eff - 3, rim)]), colour)
            if style == "beanie":
                pen.poly([(cx - a_eff - 3, rim - 6), (cx + a_eff + 3, rim - 6), (cx + a_eff + 3, rim),
                          (cx - a_eff - 3, rim)], _shade(colour, 0.8))
            else:  # a cap's brim, seen from the front
                pen.ellipse(fx, rim, a_eff * 0.9, 4, _shade(colour, 0.7))

    # Expression for this picture: smile, open mouth, blink, raised brows.
    smile = float(np.clip(idt.rest_smile + rng.normal(0, 0.45), -0.8, 1.2))
    opened = rng.uniform(0.5, 1.0) if rng.random() < 0.2 else 0.0
    blink = 0.15 if rng.random() < 0.08 else rng.uniform(0.7, 1.1)
    raise_ = rng.normal(0, 1.2)
    gaze = rng.normal(0, 0.12, 2)

    ey = fy - b * idt.eye_y
    rx = idt.eye_rx
    ry = max(0.6, rx * idt.eye_ry * blink)
    for side in (-1, 1):
        ex = fx + side * a_eff * idt.eye_gap
        if idt.eyeshadow:
            pen.ellipse(ex, ey - ry * 0.5, rx * 1.15, max(ry, 2.5) * 1.1, idt.eyeshadow)
        pen.ellipse(ex, ey, rx, ry, (245, 245, 240), outline=_shade(skin, 0.5), width=0.6)
        if blink > 0.3:
            ir = min(rx * idt.eye_ry * idt.iris_r, ry)
            ix, iy = ex + gaze[0] * rx, ey + gaze[1] * ry
            pen.ellipse(ix, iy, ir, ir, idt.iris)
            pen.ellipse(ix, iy, ir * 0.45, ir * 0.45, (15, 15, 15))
            pen.ellipse(ix + ir * 0.35, iy - ir * 0.35, ir * 0.2, ir * 0.2, (255, 255, 255))
        by = ey - ry - idt.brow_gap - raise_
        x0, x1 = ex - rx * 1.15, ex + rx * 1.15
        pts = _curve(x0, x1, by, -idt.brow_arch)
        # Slant: the inner end (towards the midline) goes down for positive slant.
        pts[:, 1] += idt.brow_slant * (0.5 - (pts[:, 0] - x0) / (x1 - x0)) * -side
        pen.line(pts, _shade(hair, 0.7) if idt.hair_style != "bald" else _shade(skin, 0.45), idt.brow_thick)

    if idt.blush:
        for side in (-1, 1):
            bc = tuple(int(s * (1 - idt.blush) + c * idt.blush) for s, c in zip(skin, (230, 90, 100)))
            pen.ellipse(fx + side * a_eff * 0.55, ey + b * 0.32, 5, 3, bc)

    if idt.freckles:
        for x, y in idt.freckles:
            pen.ellipse(fx + x * a_eff, cy + y * b, 0.9, 0.9, _shade(skin, 0.72))

    ny0, nl = ey + 2, b * idt.nose_len
    dark = _shade(skin, 0.7)
    if idt.nose == "line":
        pen.line([(fx + 1, ny0), (fx - 1, ny0 + nl), (fx + idt.nose_w * 0.5, ny0 + nl)], dark, 1.2)
    elif idt.nose == "triangle":
        pen.poly([(fx, ny0), (fx + idt.nose_w * 0.6, ny0 + nl), (fx - idt.nose_w * 0.6, ny0 + nl)],
                 _shade(skin, 0.85))
    elif idt.nose == "round":
        pen.ellipse(fx, ny0 + nl - 2, idt.nose_w * 0.5, 3.2, _shade(skin, 0.82))
        for side in (-1, 1):
            pen.ellipse(fx + side * idt.nose_w * 0.3, ny0 + nl - 1, 0.9, 0.7, dark)
    else:
        for side in (-1, 1):
            pen.ellipse(fx + side * idt.nose_w * 0.25, ny0 + nl, 1.0, 0.8, dark)

    my = fy + b * idt.mouth_y
    mw = a_eff * idt.mouth_w
    if idt.beard in ("full", "chinstrap"):
        jaw = face[face[:, 1] > my - (8 if idt.beard == "full" else 0)]
        jaw = jaw[np.argsort(jaw[:, 0])]
        if idt.beard == "full":
            inner = [(fx + mw + 3, my - 4), (fx, my + 6), (fx - mw - 3, my - 4)]
        else:  # a band along the jaw
            inner = jaw[::-1] - (0, 2.5)
        pen.poly(_join(jaw, inner), _shade(hair, 0.9))
    elif idt.beard == "goatee":
        pen.poly([(fx - mw * 0.5, my + 3), (fx + mw * 0.5, my + 3), (fx + 3, cy + b - 1), (fx - 3, cy + b - 1)],
                 _shade(hair, 0.9))
    if idt.beard in ("full", "moustache"):
        pen.poly(_join(_curve(fx - mw - 1, fx + mw + 1, my - 2, -2),
                       _curve(fx + mw + 1, fx - mw - 1, my - 5, -1.5)), _shade(hair, 0.8))

    bend = smile * mw * 0.35
    upper = _curve(fx - mw, fx + mw, my - idt.lip_thick * 0.4, bend * 0.4)
    lower = _curve(fx + mw, fx - mw, my + idt.lip_thick + opened * 5, bend + opened * 4)
    pen.poly(_join(upper, lower), idt.lip)
    if opened:
        pen.poly(_join(_curve(fx - mw * 0.8, fx + mw * 0.8, my, bend * 0.4),
                       _curve(fx + mw * 0.8, fx - mw * 0.8, my + opened * 5, bend + opened * 3)), (60, 20, 25))
    else:
        pen.line(_curve(fx - mw, fx + mw, my + idt.lip_thick * 0.3, bend * 0.7), _shade(idt.lip, 0.6), 0.7)

    if idt.mole:
        pen.ellipse(fx + idt.mole[0] * a_eff, cy + idt.mole[1] * b, 1.3, 1.3, (60, 35, 25))
    if idt.glasses:
        gc, gr = idt.glasses_color, rx * 1.45
        for side in (-1, 1):
            ex = fx + side * a_eff * idt.eye_gap
            if idt.glasses == "round":
                pen.ellipse(ex, ey, gr, gr * 0.85, None, outline=gc, width=1.3)
            else:  # a rounded rectangle: a superellipse
                pen.poly(_outline(ex, ey, gr, gr * 0.75, 5, 0, k=28), None, outline=gc, width=1.3)
        left, right = fx - a_eff * idt.eye_gap + gr, fx + a_eff * idt.eye_gap - gr
        pen.line([(left, ey - 1), (right, ey - 1)], gc, 1.2)

    return _photograph(img, rng)


_NOISE_BANK = 384


@functools.lru_cache(maxsize=1)
def _noise() -> np.ndarray:
    """A fixed bank of Gaussian noise; each picture takes a random window of it (drawing
    fresh normals per picture costs more than drawing the whole face)."""
    return np.random.default_rng(0x5EED).standard_normal((_NOISE_BANK, _NOISE_BANK, 3), dtype=np.float32)


def _photograph(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Downsample (antialiasing), then blur, lighting gradient, colour cast and sensor noise."""
    img = img.reduce(_SS)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.4, 1.2)))  # 3x cheaper than Gaussian
    x = np.asarray(img, dtype=np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    ramp = ((np.arange(SIZE) - SIZE / 2) / (SIZE / 2)).astype(np.float32)
    light = 1 + rng.uniform(0, 0.35) * (ramp[None, :] * math.cos(ang) + ramp[:, None] * math.sin(ang))
    gain = rng.uniform(0.8, 1.15) * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    x = x * light[..., None] * gain
    if rng.random() < 0.5:
        oy, ox = rng.integers(0, _NOISE_BANK - SIZE, 2)
        x += _noise()[oy:oy + SIZE, ox:ox + SIZE] * rng.uniform(1, 5)
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- face sets
@dataclass(frozen=True)
class FaceSetSpec:
    """What to generate. The defaults are the full demo's scale."""

    train_subjects: int = 1000
    train_images: int = 12
    heldout_subjects: int = 200
    heldout_images: int = 10
    seed: int = 0

    def counts(self) -> dict[str, tuple[int, int]]:
        return {"train": (self.train_subjects, self.train_images),
                "heldout": (self.heldout_subjects, self.heldout_images)}

    @property
    def total_images(self) -> int:
        return sum(s * n for s, n in self.counts().values())


@dataclass
class FaceSet:
    root: Path
    spec: FaceSetSpec
    seconds: float
    reused: bool

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def heldout(self) -> Path:
        return self.root / "heldout"


def subject_name(split: str, index: int) -> str:
    return f"{SPLITS[split][0]}{index:04d}"


def identity_for(seed: int, split: str, index: int) -> Identity:
    return random_identity(np.random.default_rng([seed, SPLITS[split][1], index]))


def draw_subject(seed: int, split: str, index: int, n_images: int) -> list[Image.Image]:
    """All pictures of one subject, in order; image k only depends on (seed, split, index, k)."""
    idt = identity_for(seed, split, index)
    return [render_face(idt, np.random.default_rng([seed, SPLITS[split][1], index, k + 1]))
            for k in range(n_images)]


def _write_chunk(job) -> int:
    root, seed, split, start, stop, n_images = job
    for index in range(start, stop):
        folder = Path(root) / split / subject_name(split, index)
        folder.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(draw_subject(seed, split, index, n_images)):
            # zlib level 1: encoding at the default level took as long as drawing the face
            img.save(folder / f"{k}.png", format="PNG", compress_level=1)
    return (stop - start) * n_images


def generate_faces(root: str | Path, spec: FaceSetSpec = FaceSetSpec(), *, workers: int | None = None,
                   progress=None) -> FaceSet:
    """Write the face set under ``root`` (``train/`` and ``heldout/``); reuse it when ``root``
    already holds exactly this spec.

    Drawn into a sibling temporary folder and moved into place at the end, so an interrupted
    run never leaves a half-written set that a later run would mistake for a complete one.
    ``progress``: optional callable(n_images_done) for a progress bar."""
    root = Path(root)
    wanted = {"generator_version": GENERATOR_VERSION, **asdict(spec)}
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == wanted:
                return FaceSet(root, spec, 0.0, reused=True)
        except ValueError:
            pass
    if root.exists() and any(root.iterdir()) and not marker.is_file():
        raise FacediagError(f"{root}: exists and is not a facediag demo face set; choose another --out")

    t0 = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    chunk = 20
    jobs = [(str(tmp), spec.seed, split, s, min(s + chunk, n_subj), n_img)
            for split, (n_subj, n_img) in spec.counts().items() for s in range(0, n_subj, chunk)]
    workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    try:
        if workers == 1:
            for job in jobs:
                done = _write_chunk(job)
                if progress:
                    progress(done)
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            try:
                for done in pool.map(_write_chunk, jobs):
                    if progress:
                        progress(done)
            finally:  # on Ctrl-C, drop the queued chunks rather than draw them all first
                pool.shutdown(wait=True, cancel_futures=True)
        (tmp / MARKER).write_text(json.dumps(wanted, indent=2) + "\n")
        if root.exists():  # an older set of ours (the marker was checked above)
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FaceSet(root, spec, time.perf_counter() - t0, reused=False)
