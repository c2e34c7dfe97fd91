"""Painting synthetic photographs of birds (and of things that are not birds), with exact knowledge of what is where.

A scene is a habitat background (sky, water, grass, foliage, sand, snow, town; often two split by a horizon) with
noise texture and unlabelled clutter, then labelled objects (birds drawn per species, distractors of other Open Images
classes), then foreground clutter that may hide parts of them, then lighting, haze, blur and sensor noise.

Every object is a list of polygons and thick lines in its own unit frame, flipped, rotated, scaled and placed, and
drawn twice: in colour on the canvas and with its id on an *owner* map. The owner map says which object is on top at
each pixel, so each object's reference box is the tight box of the pixels still visible at the end, exactly as Open
Images boxes cover the visible extent; how much of the object is hidden gives `IsOccluded`, leaving the frame gives
`IsTruncated`.

Birds carry feather texture (fur for cats and dogs), so plumage is something to see rather than a flat polygon.

Difficulty is a per-image latent in [0, 1], mostly low (Beta(1, 3)). Below 0.3 a photograph is a portrait: one bird,
sometimes a pair, large, mostly perched or swimming, on a soft background. Higher difficulty brings more birds (flocks
of up to 15, a tight flock sometimes boxed as one group), clutter, foreground occluders, distractors, camouflage,
haze, blur and noise, and smaller birds. Nothing downstream reads it; it only shapes the pixels, and it is what
decides how much a labeling job can auto-label (see emulator/sim/learner.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

RGB = tuple[int, int, int]
OCCLUDER = 255  # owner id of foreground clutter
MIN_VISIBLE_PIXELS = 24  # an object hidden below this is not annotated (nobody could box it)
MIN_VISIBLE_SHARE = 0.2


# ----------------------------------------------------------------------------------------------------------------
# Shapes in an object's unit frame
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Shape:
    """A filled polygon (width 0) or a thick polyline, in the object's unit frame, with its colour."""

    points: np.ndarray
    colour: RGB
    width: float = 0.0


_CIRCLES: dict[int, np.ndarray] = {}


def ellipse(cx: float, cy: float, rx: float, ry: float, colour: RGB, angle: float = 0.0, n: int = 20) -> Shape:
    """An ellipse as a polygon, so flips and rotations are just point transforms."""
    unit = _CIRCLES.get(n)
    if unit is None:
        t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
        unit = _CIRCLES[n] = np.stack([np.cos(t), np.sin(t)], axis=1)
    pts = unit * (rx, ry)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
    return Shape(pts + (cx, cy), colour)  # noqa: RUF005 - numpy broadcasting (a shift), not concatenation


def poly(points: Sequence[tuple[float, float]], colour: RGB) -> Shape:
    return Shape(np.asarray(points, dtype=float), colour)


def line(points: Sequence[tuple[float, float]], colour: RGB, width: float) -> Shape:
    return Shape(np.asarray(points, dtype=float), colour, width)


def jitter(colour: RGB, rng: np.random.Generator, amount: float = 14.0) -> RGB:
    r, g, b = (np.asarray(colour, dtype=float) + rng.normal(0.0, amount, 3)).clip(0, 255)
    return (int(r), int(g), int(b))


def shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, c * factor))) for c in colour)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------------------
# Birds: one look per Open Images subclass
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    """How a species is drawn: palette and proportions (unit = body height), and where it tends to live."""

    body: RGB
    wing: RGB
    head: RGB
    belly: RGB
    beak: RGB = (60, 55, 50)
    legs: RGB = (70, 60, 50)
    aspect: float = 1.6  # body width / body height
    neck: float = 0.1
    head_r: float = 0.32
    leg_len: float = 0.3
    tail: float = 0.5
    beak_len: float = 0.35
    upright: bool = False
    pattern: str = ""  # streaks | bars | spots
    extra: str = ""  # crest | comb | wattle | cap | fan | disc | cheek
    habitats: tuple[str, ...] = ("grass", "foliage", "sky")
    flies: bool = True
    swims: bool = False
    plumage: float = 1.0  # feather texture strength: glossy swans and ravens are smooth, owls and sparrows coarse


LOOKS: dict[str, Look] = {
    "Blue jay": Look(
        (70, 115, 195),
        (45, 90, 185),
        (75, 120, 200),
        (225, 225, 232),
        (30, 30, 35),
        (40, 40, 45),
        aspect=1.7,
        head_r=0.36,
        tail=0.8,
        pattern="bars",
        extra="crest",
        habitats=("foliage", "grass", "snow"),
    ),
    "Canary": Look(
        (240, 212, 45),
        (205, 185, 50),
        (245, 220, 60),
        (250, 232, 100),
        (225, 180, 140),
        (200, 160, 130),
        aspect=1.5,
        head_r=0.4,
        tail=0.5,
        beak_len=0.25,
        habitats=("foliage", "town", "grass"),
        plumage=0.8,
    ),
    "Chicken": Look(
        (236, 230, 220),
        (220, 214, 200),
        (238, 232, 222),
        (244, 240, 232),
        (225, 185, 60),
        (225, 190, 70),
        aspect=1.3,
        neck=0.35,
        head_r=0.3,
        leg_len=0.5,
        tail=0.6,
        beak_len=0.22,
        extra="comb",
        habitats=("grass", "sand"),
        flies=False,
    ),
    "Duck": Look(
        (135, 105, 75),
        (120, 120, 125),
        (35, 95, 55),
        (155, 135, 115),
        (220, 190, 45),
        (230, 140, 40),
        aspect=2.0,
        neck=0.2,
        head_r=0.3,
        leg_len=0.15,
        tail=0.3,
        beak_len=0.4,
        habitats=("water", "grass"),
        swims=True,
        plumage=0.85,
    ),
    "Eagle": Look(
        (90, 60, 35),
        (75, 50, 30),
        (242, 242, 236),
        (95, 65, 40),
        (225, 190, 50),
        (225, 190, 50),
        aspect=1.8,
        neck=0.15,
        head_r=0.33,
        tail=0.7,
        beak_len=0.4,
        habitats=("sky", "foliage", "snow"),
        plumage=1.2,
    ),
    "Falcon": Look(
        (118, 120, 132),
        (95, 98, 110),
        (60, 60, 70),
        (222, 210, 188),
        (205, 175, 70),
        (215, 185, 60),
        aspect=1.7,
        head_r=0.33,
        tail=0.7,
        beak_len=0.25,
        pattern="spots",
        habitats=("sky", "town"),
        plumage=1.2,
    ),
    "Goose": Look(
        (140, 125, 105),
        (115, 100, 85),
        (30, 30, 30),
        (205, 195, 180),
        (30, 30, 30),
        (30, 30, 30),
        aspect=1.9,
        neck=1.0,
        head_r=0.27,
        leg_len=0.4,
        tail=0.35,
        beak_len=0.35,
        extra="cheek",
        habitats=("water", "grass"),
        swims=True,
        plumage=0.85,
    ),
    "Magpie": Look(
        (22, 22, 28),
        (25, 30, 45),
        (20, 20, 25),
        (240, 240, 240),
        (20, 20, 20),
        (25, 25, 25),
        aspect=1.6,
        head_r=0.33,
        tail=1.3,
        habitats=("grass", "town", "foliage"),
        plumage=0.85,
    ),
    "Ostrich": Look(
        (38, 32, 30),
        (235, 230, 225),
        (185, 150, 140),
        (40, 34, 32),
        (190, 150, 130),
        (190, 150, 140),
        aspect=1.4,
        neck=2.0,
        head_r=0.2,
        leg_len=2.1,
        tail=0.4,
        beak_len=0.25,
        habitats=("sand", "grass"),
        flies=False,
        plumage=1.2,
    ),
    "Owl": Look(
        (140, 100, 62),
        (120, 85, 50),
        (150, 110, 70),
        (205, 180, 140),
        (70, 60, 50),
        (150, 130, 90),
        aspect=0.8,
        head_r=0.62,
        tail=0.2,
        upright=True,
        pattern="streaks",
        extra="disc",
        habitats=("foliage", "snow", "town"),
        plumage=1.3,
    ),
    "Parrot": Look(
        (45, 170, 65),
        (30, 90, 200),
        (50, 180, 70),
        (210, 200, 60),
        (70, 70, 75),
        (80, 80, 80),
        aspect=1.4,
        head_r=0.42,
        tail=1.1,
        beak_len=0.3,
        habitats=("foliage", "town"),
        plumage=0.8,
    ),
    "Penguin": Look(
        (25, 25, 32),
        (28, 28, 36),
        (25, 25, 32),
        (240, 240, 238),
        (230, 110, 40),
        (230, 120, 50),
        aspect=0.5,
        head_r=0.42,
        leg_len=0.08,
        upright=True,
        extra="cheek",
        habitats=("snow", "water"),
        flies=False,
        swims=True,
        plumage=0.8,
    ),
    "Raven": Look(
        (22, 22, 32),
        (30, 30, 45),
        (20, 20, 28),
        (28, 28, 38),
        (15, 15, 20),
        (20, 20, 25),
        aspect=1.7,
        head_r=0.33,
        tail=0.7,
        beak_len=0.45,
        habitats=("sky", "grass", "town", "snow"),
        plumage=0.85,
    ),
    "Sparrow": Look(
        (150, 110, 70),
        (120, 85, 55),
        (125, 115, 105),
        (205, 192, 170),
        (60, 55, 50),
        (150, 120, 90),
        aspect=1.5,
        head_r=0.42,
        tail=0.5,
        beak_len=0.22,
        pattern="streaks",
        habitats=("town", "grass", "foliage", "sand"),
        plumage=1.25,
    ),
    "Swan": Look(
        (245, 245, 244),
        (232, 232, 230),
        (246, 246, 245),
        (238, 238, 236),
        (230, 120, 35),
        (30, 30, 30),
        aspect=2.0,
        neck=1.3,
        head_r=0.25,
        leg_len=0.0,
        tail=0.3,
        beak_len=0.4,
        habitats=("water",),
        swims=True,
        plumage=0.8,
    ),
    "Turkey": Look(
        (82, 62, 45),
        (110, 85, 60),
        (200, 70, 70),
        (70, 55, 42),
        (200, 185, 150),
        (195, 150, 130),
        aspect=1.25,
        neck=0.45,
        head_r=0.22,
        leg_len=0.6,
        tail=0.3,
        beak_len=0.2,
        extra="fan",
        habitats=("grass", "foliage"),
        flies=False,
        plumage=1.3,
    ),
    "Woodpecker": Look(
        (32, 32, 34),
        (235, 235, 232),
        (30, 30, 32),
        (232, 230, 222),
        (80, 80, 85),
        (70, 70, 75),
        aspect=1.5,
        head_r=0.36,
        tail=0.6,
        beak_len=0.5,
        pattern="bars",
        extra="cap",
        habitats=("foliage",),
    ),
}

# Rough shares of subclasses among drawn birds (water birds and poultry are common in Open Images' bird photos).
SPECIES_WEIGHTS: dict[str, float] = {
    "Duck": 12,
    "Goose": 9,
    "Swan": 7,
    "Chicken": 7,
    "Parrot": 8,
    "Eagle": 6,
    "Owl": 6,
    "Penguin": 6,
    "Sparrow": 10,
    "Raven": 5,
    "Magpie": 4,
    "Falcon": 4,
    "Blue jay": 4,
    "Canary": 3,
    "Woodpecker": 3,
    "Turkey": 3,
    "Ostrich": 3,
}


def bird_shapes(look: Look, pose: str, rng: np.random.Generator) -> list[Shape]:
    """A bird in its unit frame (body height 1, facing right, y down), drawn back to front."""
    body, wing, head, belly = (jitter(c, rng) for c in (look.body, look.wing, look.head, look.belly))
    variant = rng.random()
    if look.body == LOOKS["Chicken"].body and variant < 0.4:  # brown hens are as common as white ones
        body, wing, head, belly = (160, 92, 42), (140, 78, 36), (165, 95, 45), (175, 110, 60)
    if look.body == LOOKS["Parrot"].body and variant < 0.5:  # scarlet macaw colouring
        body, wing, head, belly = (215, 40, 38), (40, 80, 200), (220, 45, 40), (240, 200, 40)
    s = 1.0 + rng.normal(0.0, 0.06)
    if look.upright:
        return _upright_bird(look, body, wing, head, belly, s, rng)
    bw = look.aspect * s
    shapes: list[Shape] = []
    tail = look.tail * (1.0 + rng.normal(0.0, 0.1))
    if look.extra == "fan":  # turkey: a banded fan of tail feathers behind the body
        for k, r in enumerate((1.15, 0.95, 0.75)):
            shapes.append(ellipse(-bw * 0.25, -0.25, r, r, shade(look.wing, 1.0 - 0.15 * k), n=24))
    else:
        shapes.append(
            poly(
                [
                    (-bw * 0.35, -0.18),
                    (-bw * 0.5 - tail, -0.32 - tail * 0.25),
                    (-bw * 0.5 - tail * 0.95, 0.02),
                    (-bw * 0.35, 0.16),
                ],
                shade(wing, 0.85),
            )
        )
    if pose == "flying":
        span = 1.1 + rng.random() * 0.9
        shapes.append(
            poly([(-bw * 0.05, 0.0), (-bw * 0.25 - span * 0.3, 0.35 + span * 0.55), (bw * 0.2, 0.08)], shade(wing, 0.7))
        )
    elif pose == "standing" and look.leg_len > 0:
        leg = look.leg_len
        lw = max(0.05, 0.03 * (1 + leg))
        for dx in (-0.1, 0.12):
            foot = (bw * dx + 0.08, 0.45 + leg)
            shapes.append(line([(bw * dx, 0.3), foot], look.legs, lw))
            shapes.append(line([foot, (foot[0] + 0.18, foot[1])], look.legs, lw))
    shapes.append(ellipse(0.0, 0.0, bw / 2, 0.5, body, n=24))
    shapes.append(ellipse(bw * 0.06, 0.17, bw * 0.38, 0.3, belly, n=20))
    shapes.append(ellipse(-bw * 0.08, -0.06, bw * 0.34, 0.27, wing, angle=-0.12, n=20))
    if pose == "flying":
        span = 1.2 + rng.random() * 1.0
        shapes.append(
            poly(
                [
                    (-bw * 0.12, -0.2),
                    (-bw * 0.3 - span * 0.35, -0.45 - span),
                    (-bw * 0.05, -0.5 - span * 0.6),
                    (bw * 0.22, -0.25),
                ],
                wing,
            )
        )
    if look.pattern == "bars":
        for k in range(4):
            x = -bw * 0.3 + k * bw * 0.12
            shapes.append(line([(x, -0.25), (x + 0.05, 0.12)], shade(wing, 0.35), 0.05))
    elif look.pattern == "streaks":
        for _ in range(5):
            x, y = rng.uniform(-bw * 0.3, bw * 0.3), rng.uniform(-0.2, 0.3)
            shapes.append(line([(x, y), (x - 0.1, y + 0.12)], shade(body, 0.55), 0.05))
    elif look.pattern == "spots":
        for _ in range(6):
            x, y = rng.uniform(-bw * 0.2, bw * 0.35), rng.uniform(0.05, 0.35)
            shapes.append(ellipse(x, y, 0.05, 0.04, shade(belly, 0.5), n=8))
    neck = look.neck * (1.0 + rng.normal(0.0, 0.1))
    hr = look.head_r * s
    base = (bw * 0.36, -0.22)
    if neck > 0.3:
        mid = (bw * 0.5 + neck * 0.15, -0.3 - neck * 0.55)
        hx, hy = bw * 0.42 + neck * 0.25, -0.3 - neck
        neck_colour = look.head if look.extra == "cheek" else body
        if look.body == LOOKS["Ostrich"].body:
            neck_colour = jitter(look.head, rng)
        shapes.append(line([base, mid, (hx, hy)], neck_colour, max(0.16, hr * 1.1)))
    else:
        hx, hy = bw * 0.44 + neck * 0.3, -0.32 - neck * 0.6
    shapes.append(ellipse(hx, hy, hr, hr * 0.95, head, n=16))
    if look.extra == "crest":
        shapes.append(poly([(hx - hr * 0.2, hy - hr * 0.7), (hx - hr * 1.6, hy - hr * 1.5), (hx - hr * 0.8, hy)], head))
    elif look.extra == "comb":
        shapes.append(ellipse(hx, hy - hr * 0.95, hr * 0.55, hr * 0.35, (205, 30, 30), n=10))
        shapes.append(ellipse(hx + hr * 0.7, hy + hr * 0.9, hr * 0.25, hr * 0.35, (205, 30, 30), n=8))
    elif look.extra == "cap":
        shapes.append(ellipse(hx - hr * 0.2, hy - hr * 0.55, hr * 0.6, hr * 0.4, (205, 30, 30), n=10))
    elif look.extra == "cheek":
        shapes.append(ellipse(hx - hr * 0.1, hy + hr * 0.2, hr * 0.45, hr * 0.3, (238, 238, 235), n=10))
    elif look.extra == "fan":
        shapes.append(ellipse(hx + hr * 0.5, hy + hr * 1.0, hr * 0.3, hr * 0.6, (195, 40, 40), n=8))
    bl = look.beak_len
    shapes.append(
        poly(
            [(hx + hr * 0.75, hy - hr * 0.3), (hx + hr * 0.75 + bl, hy + hr * 0.05), (hx + hr * 0.75, hy + hr * 0.3)],
            jitter(look.beak, rng, 8),
        )
    )
    shapes.append(ellipse(hx + hr * 0.3, hy - hr * 0.25, hr * 0.17, hr * 0.17, (10, 10, 10), n=8))
    return shapes


def _upright_bird(
    look: Look, body: RGB, wing: RGB, head: RGB, belly: RGB, s: float, rng: np.random.Generator
) -> list[Shape]:
    """Owls and penguins: tall bodies, head on top, facing the viewer more than sideways."""
    bw = look.aspect * s
    hr = look.head_r * s
    shapes = [
        ellipse(-0.12, 0.55, 0.14, 0.06, look.legs, n=8),
        ellipse(0.12, 0.55, 0.14, 0.06, look.legs, n=8),
        ellipse(0.0, 0.0, bw / 2, 0.55, body, n=24),
        ellipse(0.06, 0.1, bw * 0.36, 0.42, belly, n=20),
        ellipse(-bw * 0.3, 0.02, bw * 0.22, 0.38, wing, angle=0.15, n=14),
    ]
    hx, hy = 0.04, -0.5 - hr * 0.45
    shapes.append(ellipse(hx, hy, hr, hr * 0.9, head, n=18))
    if look.extra == "disc":  # owl: facial disc and two large eyes
        shapes.append(ellipse(hx, hy + hr * 0.1, hr * 0.8, hr * 0.65, jitter(look.belly, rng), n=16))
        for dx in (-0.38, 0.38):
            shapes.append(ellipse(hx + dx * hr, hy, hr * 0.24, hr * 0.24, (235, 190, 40), n=10))
            shapes.append(ellipse(hx + dx * hr, hy, hr * 0.11, hr * 0.11, (10, 10, 10), n=8))
        shapes.append(
            poly([(hx - hr * 0.1, hy + hr * 0.2), (hx + hr * 0.1, hy + hr * 0.2), (hx, hy + hr * 0.5)], look.beak)
        )
    else:  # penguin: white cheek patch, beak forward
        shapes.append(ellipse(hx + hr * 0.15, hy + hr * 0.25, hr * 0.5, hr * 0.35, (240, 240, 238), n=10))
        shapes.append(ellipse(hx + hr * 0.05, hy + hr * 0.55, hr * 0.45, hr * 0.2, (235, 200, 60), n=10))
        shapes.append(
            poly(
                [
                    (hx + hr * 0.7, hy - hr * 0.1),
                    (hx + hr * 0.7 + look.beak_len, hy + hr * 0.1),
                    (hx + hr * 0.7, hy + hr * 0.25),
                ],
                look.beak,
            )
        )
        shapes.append(ellipse(hx + hr * 0.35, hy - hr * 0.2, hr * 0.13, hr * 0.13, (10, 10, 10), n=8))
    if look.pattern == "streaks":
        for _ in range(6):
            x, y = rng.uniform(-bw * 0.25, bw * 0.25), rng.uniform(-0.2, 0.35)
            shapes.append(line([(x, y), (x, y + 0.12)], shade(body, 0.5), 0.05))
    return shapes


# ----------------------------------------------------------------------------------------------------------------
# Things that are not birds (annotated under their own classes) and unlabelled clutter
# ----------------------------------------------------------------------------------------------------------------
BRIGHT: tuple[RGB, ...] = (
    (220, 40, 40),
    (240, 200, 40),
    (40, 90, 210),
    (240, 140, 30),
    (160, 60, 170),
    (245, 245, 245),
    (30, 160, 80),
)
FUR: tuple[RGB, ...] = ((150, 100, 60), (110, 105, 100), (200, 150, 90), (60, 50, 45), (220, 210, 195))


def distractor_shapes(name: str, rng: np.random.Generator) -> list[Shape]:
    """Other Open Images classes, several of them bird-coloured or bird-shaped on purpose."""
    pick = lambda palette: jitter(palette[rng.integers(len(palette))], rng)  # noqa: E731
    if name == "Butterfly":
        c, d = pick(BRIGHT), pick(FUR)
        return [
            ellipse(-0.45, -0.3, 0.45, 0.35, c, angle=0.5),
            ellipse(0.45, -0.3, 0.45, 0.35, c, angle=-0.5),
            ellipse(-0.35, 0.3, 0.3, 0.25, shade(c, 0.8), angle=-0.4),
            ellipse(0.35, 0.3, 0.3, 0.25, shade(c, 0.8), angle=0.4),
            ellipse(0, 0, 0.08, 0.5, d, n=10),
        ]
    if name == "Kite":
        c, d = pick(BRIGHT), pick(BRIGHT)
        return [
            line([(0, 0.9), (0.2, 1.4), (-0.1, 1.9), (0.1, 2.4)], shade(d, 0.7), 0.05),
            poly([(0, -0.9), (0.6, 0), (0, 0.9), (-0.6, 0)], c),
            poly([(0, -0.9), (0.6, 0), (0, 0)], d),
        ]
    if name == "Ball":
        c = pick(BRIGHT)
        return [ellipse(0, 0, 0.5, 0.5, c, n=24), line([(-0.5, 0), (0.5, 0)], shade(c, 0.5), 0.08)]
    if name == "Airplane":
        c = jitter((225, 228, 232), rng, 10)
        return [
            poly([(-0.1, 0), (-0.5, -0.9), (-0.3, -0.9), (0.25, 0)], shade(c, 0.85)),
            poly([(-1.0, 0), (-1.2, -0.45), (-1.0, -0.45), (-0.8, 0)], shade(c, 0.8)),
            ellipse(0, 0, 1.2, 0.16, c, n=24),
            poly([(-0.1, 0.05), (-0.45, 0.7), (-0.25, 0.7), (0.25, 0.05)], c),
        ]
    if name == "Fish":
        c = pick(((230, 120, 40), (180, 185, 195), (200, 170, 60), (90, 110, 130)))
        return [
            poly([(-0.6, 0), (-1.05, -0.35), (-1.0, 0.35)], shade(c, 0.85)),
            ellipse(0, 0, 0.7, 0.3, c),
            ellipse(0.45, -0.06, 0.05, 0.05, (15, 15, 15), n=6),
        ]
    if name == "Flower":
        c = pick(BRIGHT)
        shapes = [line([(0, 0.2), (0.05, 1.3)], (60, 130, 40), 0.08)]
        for k in range(6):
            a = k * math.pi / 3
            shapes.append(ellipse(0.3 * math.cos(a), 0.3 * math.sin(a), 0.22, 0.22, c, n=10))
        return [*shapes, ellipse(0, 0, 0.16, 0.16, (240, 200, 40), n=10)]
    if name == "Tree":
        leaf = jitter((50, 110, 40), rng, 20)
        return [
            poly([(-0.12, 0.3), (0.12, 0.3), (0.15, 1.6), (-0.15, 1.6)], jitter((90, 65, 40), rng)),
            ellipse(0, -0.1, 0.75, 0.6, leaf),
            ellipse(-0.35, 0.15, 0.45, 0.4, shade(leaf, 0.85)),
            ellipse(0.4, 0.1, 0.45, 0.4, shade(leaf, 1.1)),
        ]
    if name == "Car":
        c = pick(BRIGHT)
        return [
            poly([(-1, 0), (1, 0), (1, 0.45), (-1, 0.45)], c),
            poly([(-0.55, 0), (-0.35, -0.4), (0.4, -0.4), (0.6, 0)], shade(c, 0.9)),
            ellipse(-0.6, 0.45, 0.22, 0.22, (25, 25, 25), n=12),
            ellipse(0.6, 0.45, 0.22, 0.22, (25, 25, 25), n=12),
        ]
    if name == "Boat":
        c = pick(BRIGHT)
        return [
            poly([(-1, -0.1), (1, -0.1), (0.7, 0.3), (-0.8, 0.3)], c),
            line([(0, -0.1), (0, -1.3)], (90, 70, 50), 0.05),
            poly([(0.05, -1.25), (0.7, -0.2), (0.05, -0.2)], (240, 240, 235)),
        ]
    if name == "Person":
        c, skin = pick(BRIGHT), jitter((210, 170, 140), rng, 20)
        return [
            line([(-0.1, 0.5), (-0.15, 1.4)], (50, 50, 70), 0.16),
            line([(0.1, 0.5), (0.15, 1.4)], (50, 50, 70), 0.16),
            poly([(-0.28, -0.45), (0.28, -0.45), (0.24, 0.55), (-0.24, 0.55)], c),
            line([(-0.28, -0.4), (-0.45, 0.3)], skin, 0.1),
            line([(0.28, -0.4), (0.45, 0.3)], skin, 0.1),
            ellipse(0, -0.7, 0.2, 0.24, skin, n=14),
        ]
    if name in ("Cat", "Dog"):
        c = pick(FUR)
        ear = 0.25 if name == "Cat" else 0.18
        return [
            line([(-0.7, -0.05), (-1.05, -0.5)], c, 0.1),
            line([(-0.45, 0.2), (-0.45, 0.7)], shade(c, 0.9), 0.13),
            line([(0.4, 0.2), (0.4, 0.7)], c, 0.13),
            ellipse(0, 0, 0.75, 0.3, c),
            ellipse(0.8, -0.3, 0.28, 0.25, c, n=14),
            poly([(0.62, -0.45), (0.68, -0.45 - ear), (0.8, -0.5)], shade(c, 0.9)),
            poly([(0.85, -0.5), (0.98, -0.45 - ear), (1.0, -0.42)], shade(c, 0.9)),
        ]
    raise ValueError(f"no drawing for {name!r}")


DISTRACTORS_BY_HABITAT: dict[str, tuple[str, ...]] = {
    "sky": ("Kite", "Airplane", "Butterfly", "Kite", "Airplane"),
    "water": ("Fish", "Boat", "Fish", "Ball"),
    "grass": ("Flower", "Ball", "Dog", "Cat", "Person", "Tree", "Butterfly"),
    "foliage": ("Butterfly", "Flower", "Tree", "Cat"),
    "sand": ("Ball", "Person", "Dog", "Car"),
    "snow": ("Person", "Dog", "Tree"),
    "town": ("Car", "Person", "Cat", "Dog", "Ball"),
}


# ----------------------------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------------------------
HABITAT_COLOURS: dict[str, tuple[RGB, RGB, RGB]] = {  # top, bottom, texture tint
    "sky": ((105, 155, 220), (190, 215, 240), (250, 250, 252)),
    "water": ((45, 95, 125), (80, 125, 140), (170, 200, 210)),
    "grass": ((85, 130, 50), (115, 150, 60), (60, 95, 35)),
    "foliage": ((40, 75, 30), (70, 110, 45), (120, 150, 60)),
    "sand": ((205, 185, 145), (180, 155, 115), (150, 125, 90)),
    "snow": ((225, 230, 238), (240, 242, 246), (185, 195, 210)),
    "town": ((140, 140, 145), (110, 108, 105), (80, 80, 85)),
}
GROUNDS = ("water", "grass", "sand", "snow", "foliage", "town")


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically (the look of clouds, mottling, ripples)."""
    grid = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(grid[..., 0] if channels == 1 else grid).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def background(
    rng: np.random.Generator, h: int, w: int, top: str, ground: str | None, horizon: int, clutter: float
) -> np.ndarray:
    """A float32 HxWx3 habitat background: gradients, value-noise texture, and the habitat's own pattern."""
    out = np.empty((h, w, 3), dtype=np.float32)
    regions = [(top, 0, horizon if ground else h)]
    if ground:
        regions.append((ground, horizon, h))
    for habitat, y0, y1 in regions:
        if y1 <= y0:
            continue
        a, b, tint = (np.asarray(jitter(c, rng, 18), dtype=np.float32) for c in HABITAT_COLOURS[habitat])
        t = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
        region = a + (b - a) * t
        n = smooth_noise(rng, y1 - y0, w, int(rng.integers(3, 8)))[..., None]
        if habitat == "sky":
            clouds = np.clip((n - rng.uniform(0.45, 0.75)) * 3.0, 0.0, 1.0)
            region = region + (tint - region) * clouds
        elif habitat == "water":
            yy = np.arange(y1 - y0, dtype=np.float32)[:, None, None]
            ripple = np.sin(yy * rng.uniform(0.3, 0.9) + n * 12.0) * 0.5 + 0.5
            region = region + (tint - region) * (ripple**6) * 0.5
        else:
            fine = smooth_noise(rng, y1 - y0, w, int(8 + 24 * clutter + rng.integers(0, 10)))[..., None]
            region = region + (tint - region) * (0.6 * n + 0.4 * fine) * (0.4 + 0.5 * clutter)
        out[y0:y1] = region
    return out


def draw_clutter(
    draw: ImageDraw.ImageDraw,
    owner: ImageDraw.ImageDraw | None,
    rng: np.random.Generator,
    h: int,
    w: int,
    count: int,
    near: Sequence[tuple[float, float, float]] = (),
    blobs: float = 0.2,
) -> None:
    """Unlabelled clutter (branches, leaf clusters, blobs, rocks, grass blades), optionally near given objects.

    With `owner` given the clutter is foreground: it is also drawn on the owner map and hides what lies under it.
    """
    for k in range(count):
        if near and k < len(near):
            cx, cy, r = near[k]
        else:
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 60)
        rest = (1.0 - blobs) / 4
        kind = rng.choice(
            ("branch", "leaves", "blob", "rock", "blades"), p=(rest * 1.3, rest * 1.3, blobs, rest * 0.7, rest * 0.7)
        )
        shapes: list[tuple[str, list[tuple[float, float]], RGB, int]] = []
        if kind == "branch":
            a = rng.uniform(0, math.pi)
            length = r * rng.uniform(1.5, 4.0)
            dx, dy = math.cos(a) * length, math.sin(a) * length
            col = jitter((95, 70, 45), rng, 20)
            wid = int(max(2, r * rng.uniform(0.06, 0.15)))
            shapes.append(("line", [(cx - dx, cy - dy), (cx + dx, cy + dy)], col, wid))
            for _ in range(int(rng.integers(0, 3))):
                t = rng.uniform(-0.8, 0.8)
                bx, by = cx + dx * t, cy + dy * t
                b = a + rng.choice((-1, 1)) * rng.uniform(0.4, 1.0)
                bl = length * rng.uniform(0.2, 0.5)
                shapes.append(
                    ("line", [(bx, by), (bx + math.cos(b) * bl, by + math.sin(b) * bl)], col, max(1, wid // 2))
                )
        elif kind == "leaves":
            col = jitter((rng.choice((60, 110, 170)), 130, 45), rng, 25)
            for _ in range(int(rng.integers(3, 9))):
                lx, ly = cx + rng.normal(0, r * 0.4), cy + rng.normal(0, r * 0.4)
                lr = r * rng.uniform(0.12, 0.3)
                shapes.append(
                    (
                        "ellipse",
                        [(lx - lr, ly - lr * 0.55), (lx + lr, ly + lr * 0.55)],
                        shade(col, rng.uniform(0.8, 1.2)),
                        0,
                    )
                )
        elif kind == "blob":  # bird-ish colours on purpose: a brown or white blob is a classic false positive
            col = jitter(rng.choice(np.asarray([(150, 110, 70), (235, 235, 235), (40, 40, 45), (200, 180, 60)])), rng)
            rx, ry = r * rng.uniform(0.2, 0.6), r * rng.uniform(0.15, 0.45)
            shapes.append(("ellipse", [(cx - rx, cy - ry), (cx + rx, cy + ry)], col, 0))
        elif kind == "rock":
            col = jitter((128, 125, 120), rng, 20)
            rx, ry = r * rng.uniform(0.3, 0.8), r * rng.uniform(0.2, 0.5)
            shapes.append(("ellipse", [(cx - rx, cy - ry), (cx + rx, cy + ry)], col, 0))
        else:
            col = jitter((70, 125, 40), rng, 20)
            for _ in range(int(rng.integers(4, 12))):
                bx = cx + rng.normal(0, r * 0.5)
                shapes.append(
                    (
                        "line",
                        [(bx, cy + r * 0.5), (bx + rng.normal(0, r * 0.15), cy - r * rng.uniform(0, 0.6))],
                        col,
                        int(max(1, r * 0.04)),
                    )
                )
        for shape_kind, pts, col, wid in shapes:
            for target, fill in ((draw, col), (owner, OCCLUDER)):
                if target is None:
                    continue
                if shape_kind == "line":
                    target.line(pts, fill=fill, width=wid)
                else:
                    target.ellipse(_ordered(pts), fill=fill)


def _ordered(pts: list[tuple[float, float]]) -> list[float]:
    (x0, y0), (x1, y1) = pts
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


# ----------------------------------------------------------------------------------------------------------------
# Placing objects and reading back what is visible
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Drawn:
    """One labelled object as drawn: class display name, and what the owner map says about it afterwards."""

    name: str
    is_bird: bool
    oid: int
    extent: tuple[float, float, float, float]  # full (unclipped) x0, y0, x1, y1 in pixels
    full_pixels: int = 0
    members: list[int] = field(default_factory=list)  # a group box: the member objects' ids


@dataclass
class SceneObject:
    """What an annotator would record: the visible box in pixels (x0, y0, x1, y1 exclusive) and the flags."""

    name: str
    is_bird: bool
    box: tuple[int, int, int, int]
    occluded: bool
    truncated: bool
    group: bool


def place(
    shapes: list[Shape], size: float, cx: float, cy: float, angle: float, flip: bool
) -> tuple[list[Shape], tuple[float, float, float, float]]:
    """Scale the unit-frame shapes so the object's larger side is `size` px, centre it at (cx, cy), flip/rotate.

    Returns the placed shapes and the object's full extent (x0, y0, x1, y1), which may lie outside the image.
    """
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    if flip:
        rot = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ rot
    allp = np.concatenate([sh.points for sh in shapes]) @ rot
    pad = max(sh.width for sh in shapes) / 2
    lo, hi = allp.min(axis=0) - pad, allp.max(axis=0) + pad
    scale = size / max(float((hi - lo).max()), 1e-6)
    allp = (allp - (lo + hi) / 2) * scale + (cx, cy)
    moved, start = [], 0
    for sh in shapes:
        end = start + len(sh.points)
        moved.append(Shape(allp[start:end], sh.colour, sh.width * scale))
        start = end
    half = (hi - lo) * scale / 2
    return moved, (cx - half[0], cy - half[1], cx + half[0], cy + half[1])


def draw_shapes(draw: ImageDraw.ImageDraw, owner: ImageDraw.ImageDraw, shapes: list[Shape], oid: int) -> None:
    for sh in shapes:
        pts = [tuple(p) for p in sh.points.tolist()]
        if sh.width > 0:
            wid = max(1, round(sh.width))
            draw.line(pts, fill=sh.colour, width=wid, joint="curve")
            owner.line(pts, fill=oid, width=wid, joint="curve")
        else:
            draw.polygon(pts, fill=sh.colour)
            owner.polygon(pts, fill=oid)


def visible_objects(owner: np.ndarray, drawn: list[Drawn], groups: list[Drawn]) -> list[SceneObject]:
    """Reference objects from the final owner map: tight boxes of visible pixels, occlusion and truncation flags."""
    h, w = owner.shape
    counts = np.bincount(owner.ravel(), minlength=256)
    slices = ndimage.find_objects(owner, max_label=255)
    in_group = {m for g in groups for m in g.members}
    out: list[SceneObject] = []

    def box_of(ids: Sequence[int]) -> tuple[int, int, int, int] | None:
        found = [slices[i - 1] for i in ids if slices[i - 1] is not None]
        if not found:
            return None
        return (
            min(s[1].start for s in found),
            min(s[0].start for s in found),
            max(s[1].stop for s in found),
            max(s[0].stop for s in found),
        )

    def truncated(extent: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = extent
        return x0 < -0.5 or y0 < -0.5 or x1 > w + 0.5 or y1 > h + 0.5

    for obj in drawn:
        if obj.oid in in_group:
            continue
        visible = int(counts[obj.oid])
        if visible < MIN_VISIBLE_PIXELS or visible < MIN_VISIBLE_SHARE * max(obj.full_pixels, 1):
            continue
        box = box_of([obj.oid])
        if box is None:
            continue
        occluded = visible < 0.85 * obj.full_pixels
        out.append(SceneObject(obj.name, obj.is_bird, box, occluded, truncated(obj.extent), False))
    for g in groups:
        box = box_of(g.members)
        if box is None:
            continue
        visible = sum(int(counts[m]) for m in g.members)
        full = sum(d.full_pixels for d in drawn if d.oid in g.members)
        ext = (
            min(d.extent[0] for d in drawn if d.oid in g.members),
            min(d.extent[1] for d in drawn if d.oid in g.members),
            max(d.extent[2] for d in drawn if d.oid in g.members),
            max(d.extent[3] for d in drawn if d.oid in g.members),
        )
        out.append(SceneObject(g.name, True, box, visible < 0.85 * full, truncated(ext), True))
    return out


# ----------------------------------------------------------------------------------------------------------------
# A whole scene
# ----------------------------------------------------------------------------------------------------------------
# The photographs' difficulty latent: mostly easy portraits, a tail of hard, busy scenes.
DIFFICULTY_BETA = (1.0, 3.0)

# Birds per photo by kind of photo: portraits hold one bird (sometimes two), busy scenes hold flocks.
BIRD_COUNTS = {  # difficulty below: (P(1), P(2), P(3), P(4), P(5-8), P(9-15))
    0.3: (0.75, 0.20, 0.05, 0.0, 0.0, 0.0),
    0.6: (0.35, 0.25, 0.10, 0.05, 0.10, 0.15),
    1.01: (0.05, 0.05, 0.05, 0.05, 0.30, 0.50),
}


def bird_count(rng: np.random.Generator, difficulty: float) -> int:
    """Birds in one bird photo: mostly one, a tail of flocks up to 15 (about 2.2 boxes per photo overall, like
    Open Images' bird photos), flocks concentrated in the difficult photos."""
    probs = next(p for limit, p in BIRD_COUNTS.items() if difficulty < limit)
    pick = int(rng.choice(6, p=probs))
    if pick < 4:
        return pick + 1
    return int(rng.integers(5, 9)) if pick == 4 else int(rng.integers(9, 16))


@dataclass
class Scene:
    """A painted photograph: RGB pixels and the objects an exhaustive annotator would box."""

    pixels: np.ndarray
    objects: list[SceneObject]
    difficulty: float


def paint_scene(rng: np.random.Generator, with_birds: bool = True) -> Scene:
    """Paint one photograph. Bird photos hold 1-15 birds; the others only distractors and clutter.

    A bird photo in which every bird ended up hidden or out of frame is painted again (from the same generator, so
    still deterministic): the mirror's bird images all have at least one bird box, like the real selection.
    """
    while True:
        scene = _paint(rng, with_birds)
        if not with_birds or any(o.is_bird for o in scene.objects):
            return scene


def _paint(rng: np.random.Generator, with_birds: bool) -> Scene:
    w, h = int(rng.integers(200, 361)), int(rng.integers(200, 361))
    difficulty = float(rng.beta(*DIFFICULTY_BETA))
    species = list(SPECIES_WEIGHTS)
    weights = np.asarray(list(SPECIES_WEIGHTS.values()), dtype=float)
    look_name = str(rng.choice(species, p=weights / weights.sum()))
    look = LOOKS[look_name]

    top = str(rng.choice(look.habitats)) if with_birds else str(rng.choice(list(HABITAT_COLOURS)))
    ground: str | None = None
    if top == "sky" and rng.random() < 0.55:
        ground = str(rng.choice(GROUNDS))
    elif top != "sky" and rng.random() < 0.35:
        ground, top = top, "sky"
    horizon = int(h * rng.uniform(0.3, 0.7))
    clutter = min(1.0, difficulty**2 * rng.uniform(0.7, 1.3))
    # The background is computed at half resolution (it is smooth anyway) and upscaled: a third of the paint time.
    bg = background(rng, (h + 1) // 2, (w + 1) // 2, top, ground, horizon // 2, clutter)
    if rng.random() < 0.85 - 0.7 * difficulty:  # shallow depth of field: a soft background makes subjects pop
        bg = ndimage.uniform_filter(bg, size=(int(rng.integers(2, 7)), int(rng.integers(2, 7)), 1))
    canvas = Image.fromarray(bg.clip(0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    owner_img = Image.new("L", (w, h), 0)
    owner = ImageDraw.Draw(owner_img)
    draw_clutter(draw, None, rng, h, w, int(rng.poisson(0.5 + 12 * clutter)), blobs=0.05 + 0.3 * clutter)

    drawn: list[Drawn] = []
    groups: list[Drawn] = []
    next_id = 1

    def add(
        name: str, is_bird: bool, shapes: list[Shape], size: float, cx: float, cy: float, angle: float, flip: bool
    ) -> Drawn:
        nonlocal next_id
        placed, extent = place(shapes, size, cx, cy, angle, flip)
        obj = Drawn(name, is_bird, next_id, extent)
        next_id += 1
        draw_shapes(draw, owner, placed, obj.oid)
        x0, y0 = max(0, int(extent[0]) - 1), max(0, int(extent[1]) - 1)
        x1, y1 = min(w, int(extent[2]) + 2), min(h, int(extent[3]) + 2)
        if x1 > x0 and y1 > y0:
            obj.full_pixels = int((np.asarray(owner_img.crop((x0, y0, x1, y1))) == obj.oid).sum())
        drawn.append(obj)
        return obj

    n_distract = int(rng.poisson(0.15 + 2.0 * difficulty**2)) if with_birds else int(rng.integers(1, 6))
    distractor_plan = [
        str(rng.choice(DISTRACTORS_BY_HABITAT[ground or top if rng.random() < 0.5 else top])) for _ in range(n_distract)
    ]
    bird_plan: list[tuple[float, float, float, float, bool, str]] = []
    if with_birds:
        bird_plan = _plan_birds(rng, look_name, w, h, top, ground, horizon, difficulty, groups)

    # Interleave birds and distractors in depth order: either may hide the other.
    order = [("bird", i) for i in range(len(bird_plan))] + [("other", i) for i in range(len(distractor_plan))]
    rng.shuffle(order)
    flock_members: dict[int, Drawn] = {}
    for kind, i in order:
        if kind == "bird":
            size, cx, cy, angle, flip, pose = bird_plan[i]
            shapes = bird_shapes(look, pose, rng)
            if difficulty > 0.5 and rng.random() < (difficulty - 0.5):  # camouflage: plumage tinted by surroundings
                tint = tuple(int(v) for v in bg[min(h - 1, max(0, int(cy))) // 2, min(w - 1, max(0, int(cx))) // 2])
                for sh in shapes:
                    sh.colour = mix(sh.colour, tint, rng.uniform(0.2, 0.5))  # type: ignore[arg-type]
            flock_members[i] = add("Bird:" + look_name, True, shapes, size, cx, cy, angle, flip)
        else:
            name = distractor_plan[i]
            size = float(np.exp(rng.uniform(math.log(18), math.log(0.55 * min(w, h)))))
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            add(name, False, distractor_shapes(name, rng), size, cx, cy, rng.normal(0, 0.2), bool(rng.random() < 0.5))
    for g in groups:  # group plans referred to plan indices; now they are object ids
        g.members = [flock_members[i].oid for i in g.members if i in flock_members]

    birds = [d for d in drawn if d.is_bird]
    occluders = [b for b in birds if rng.random() < 0.05 + 0.5 * difficulty]
    near = [
        (
            (b.extent[0] + b.extent[2]) / 2 + rng.normal(0, 0.3) * (b.extent[2] - b.extent[0]),
            (b.extent[1] + b.extent[3]) / 2 + rng.normal(0, 0.3) * (b.extent[3] - b.extent[1]),
            max(10.0, 0.6 * max(b.extent[2] - b.extent[0], b.extent[3] - b.extent[1])),
        )
        for b in occluders
    ]
    draw_clutter(draw, owner, rng, h, w, len(near) + int(rng.poisson(3 * clutter)), near, blobs=0.05 + 0.3 * clutter)

    owner_map = np.asarray(owner_img)
    canvas = texture(canvas, owner_map, drawn, rng)
    pixels = finish(canvas, rng, difficulty)
    objects = visible_objects(owner_map, drawn, groups)
    return Scene(pixels, objects, difficulty)


def _plan_birds(
    rng: np.random.Generator,
    look_name: str,
    w: int,
    h: int,
    top: str,
    ground: str | None,
    horizon: int,
    difficulty: float,
    groups: list[Drawn],
) -> list[tuple[float, float, float, float, bool, str]]:
    """Where the birds go: (size px, centre x, centre y, angle, facing left, pose) each; flocks may be one group."""
    look = LOOKS[look_name]
    n = bird_count(rng, difficulty)
    side = min(w, h)
    plans = []
    if n <= 2 and difficulty < 0.3:  # a portrait
        lo, hi = side * 0.25, side * (0.85 if n == 1 else 0.5)
        sizes = [float(np.exp(rng.uniform(math.log(lo), math.log(hi)))) for _ in range(n)]
    elif n == 1:  # a distant bird more often as difficulty grows
        lo = 16 if rng.random() < 0.1 + 0.4 * difficulty else side * 0.2
        hi = max(side * (0.85 - 0.45 * difficulty), lo + 4)
        sizes = [float(np.exp(rng.uniform(math.log(lo), math.log(hi))))]
    else:
        hi = side * max(0.12, 0.6 / math.sqrt(n) - 0.15 * difficulty)
        base = float(np.exp(rng.uniform(math.log(12), math.log(max(hi, 14)))))
        sizes = [base * float(np.exp(rng.normal(0, 0.15))) for _ in range(n)]
    portrait = n <= 2 and difficulty < 0.3
    in_flight = 0.3 if portrait else 0.8  # portraits are mostly of perched, standing or swimming birds
    flying = look.flies and (top == "sky" and (ground is None or rng.random() < 0.6)) and rng.random() < in_flight
    swimming = look.swims and "water" in (top, ground)
    pose = "flying" if flying else ("swimming" if swimming else "standing")
    tight = n >= 5 and rng.random() < 0.25
    spread = side * (0.1 if tight else rng.uniform(0.15, 0.3))
    cx0, cy0 = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    if pose == "flying" and ground:
        cy0 = rng.uniform(0.1, 0.9) * horizon
    elif pose != "flying" and ground:
        cy0 = horizon + rng.uniform(0.1, 0.8) * (h - horizon)
    same_way = rng.random() < 0.7
    flip0 = bool(rng.random() < 0.5)
    for k, size in enumerate(sizes):
        if n == 1:
            cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
            if rng.random() < 0.12:  # cut by the frame
                cx = rng.choice((rng.uniform(-0.25, 0.05), rng.uniform(0.95, 1.25))) * w
        elif portrait and k == 1 and rng.random() < 0.75:  # a pair, mostly a little apart (sometimes touching)
            x0, y0 = plans[0][1], plans[0][2]
            gap = (sizes[0] + size) / 2 * rng.uniform(1.05, 1.5)
            side_x = -1.0 if x0 > w / 2 else 1.0
            cx, cy = x0 + side_x * gap, y0 + rng.normal(0, 0.15 * size)
        else:
            cx, cy = cx0 + rng.normal(0, spread), cy0 + rng.normal(0, spread * 0.6)
        angle = rng.normal(0, 0.35 if pose == "flying" else 0.08)
        flip = flip0 if same_way else bool(rng.random() < 0.5)
        plans.append((size, float(cx), float(cy), float(angle), flip, pose))
    if tight:
        groups.append(Drawn("Bird:" + look_name, True, 0, (0, 0, 0, 0), members=list(range(len(plans)))))
    return plans


FURRY = {"Cat", "Dog"}


def texture(canvas: Image.Image, owner: np.ndarray, drawn: list[Drawn], rng: np.random.Generator) -> Image.Image:
    """Feathers and fur: fine, stroke-like texture on the pixels birds (and cats and dogs) still show.

    Flat-coloured polygons would be indistinguishable from flat background patches; real plumage is not.
    """
    out = np.asarray(canvas, dtype=np.int16)
    h, w = owner.shape
    birds = [d for d in drawn if d.is_bird]
    plumage = LOOKS[birds[0].name.split(":", 1)[1]].plumage if birds else 1.0
    for ids, tile, amplitude in (
        ([d.oid for d in birds], _texture_tile(0), rng.uniform(10, 22) * plumage),
        ([d.oid for d in drawn if d.name in FURRY], _texture_tile(1), rng.uniform(6, 14)),
    ):
        if not ids:
            continue
        lut = np.zeros(256, dtype=bool)
        lut[ids] = True
        mask = lut[owner]
        y, x = int(rng.integers(0, tile.shape[0] - h)), int(rng.integers(0, tile.shape[1] - w))
        strokes = (tile[y : y + h, x : x + w] * amplitude).astype(np.int16)
        out[mask] += strokes[mask][:, None]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


_TEXTURE: dict[int, np.ndarray] = {}


def _texture_tile(kind: int) -> np.ndarray:
    """Fixed 512x512 unit-variance texture fields shared by every painting: 0 feathers (short diagonal strokes),
    1 fur (longer, softer, mostly vertical hairs)."""
    if kind not in _TEXTURE:
        noise = np.random.default_rng(20190518 + kind).standard_normal((512, 512)).astype(np.float32)
        if kind == 0:
            field = ndimage.uniform_filter(noise, size=(2, 5)) + ndimage.uniform_filter(noise, size=(5, 2))
        else:
            field = ndimage.uniform_filter(noise, size=(9, 2))
        _TEXTURE[kind] = field / field.std()
    return _TEXTURE[kind]


def finish(img: Image.Image, rng: np.random.Generator, difficulty: float) -> np.ndarray:
    """Photographic finish: exposure and colour cast, haze, a little blur, sensor noise; uint8 HxWx3.

    Exposure and haze are per-channel affine maps, applied as one lookup table; the sensor noise is a window of a
    fixed noise tile at a random offset (cheap, and still different in every photograph).
    """
    gain = rng.uniform(0.75, 1.15) * (1 + rng.normal(0, 0.04, 3))
    haze = rng.uniform(0.15, 0.45) * difficulty if rng.random() < 0.6 * difficulty else 0.0
    veil = rng.uniform(170, 230) * haze
    levels = np.arange(256, dtype=np.float32)
    lut = np.concatenate([(levels * g * (1 - haze) + veil).clip(0, 255) for g in gain]).astype(np.uint8)
    img = img.point(lut.tolist())
    img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 0.7) + 0.6 * difficulty * rng.random()))
    out = np.asarray(img, dtype=np.int16)
    h, w, _ = out.shape
    tile = _noise_tile()
    y, x = int(rng.integers(0, tile.shape[0] - h)), int(rng.integers(0, tile.shape[1] - w))
    sigma = 2 + 6 * difficulty
    out = out + (tile[y : y + h, x : x + w] * sigma).astype(np.int16)
    return out.clip(0, 255).astype(np.uint8)


_NOISE: list[np.ndarray] = []


def _noise_tile() -> np.ndarray:
    """A fixed 512x512x3 unit-variance noise tile (seeded, so every process paints the same bytes)."""
    if not _NOISE:
        _NOISE.append(np.random.default_rng(20190517).standard_normal((512, 512, 3), dtype=np.float32))
    return _NOISE[0]
