"""Synthetic video-object-segmentation data: textured shapes moving over textured backgrounds.

NumPy only (no torch), so the tracker runtime, tests and benchmarks can use it too.

Shapes: frames are T x H x W x 3 uint8 RGB; masks are T x H x W uint8 labels (0 = background,
1..K objects). Every object is visible in frame 0 of a clip; later frames may occlude it fully.
Everything is a deterministic function of the seed.
"""

from dataclasses import dataclass

import numpy as np

from vosx.limits import MAX_OBJECTS

_ANGLE_BINS = 720  # resolution of an object's radial outline r(phi)
_MIN_VISIBLE_FRACTION = 0.35  # of an object's own area that must be unoccluded in frame 0


Window = tuple[int, int, int, int]  # (top, left, height, width) of a rendered part of a frame


@dataclass(frozen=True)
class SyntheticClip:
    """One synthetic clip.

    Attributes:
        frames: T x H x W x 3 uint8 RGB.
        masks: T x H x W uint8 labels, 0 = background, 1..K objects.
    """

    frames: np.ndarray
    masks: np.ndarray

    @property
    def num_objects(self) -> int:
        """K, the number of object labels (the largest label of frame 0)."""
        return int(self.masks[0].max())


@dataclass(frozen=True)
class _Texture:
    """A two-colour pattern in some 2-D coordinate system."""

    kind: int  # 0 flat noise, 1 stripes, 2 checker, 3 rings
    colour_a: np.ndarray  # 3 float32, 0..255
    colour_b: np.ndarray  # 3 float32
    freq: float  # cycles per unit of the coordinate system
    angle: float
    waves: np.ndarray  # W x 4 (fx, fy, phase, amplitude) pseudo-noise sinusoids

    def render(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Colours at coordinates (u, v) (any equal shapes S) -> S x 3 float32."""
        noise = np.zeros_like(u)
        for fx, fy, phase, amp in self.waves:
            noise += amp * np.sin(fx * u + fy * v + phase)
        c, s = np.cos(self.angle), np.sin(self.angle)
        ru = c * u + s * v
        rv = -s * u + c * v
        if self.kind == 0:
            p = 0.5 + 0.5 * np.tanh(2.0 * noise)
        elif self.kind == 1:
            p = 0.5 + 0.5 * np.sin(2 * np.pi * self.freq * ru + noise)
        elif self.kind == 2:
            p = (np.sin(2 * np.pi * self.freq * ru) * np.sin(2 * np.pi * self.freq * rv) > 0) * 1.0
            p = 0.8 * p + 0.2 * (0.5 + 0.5 * np.tanh(noise))
        else:
            p = 0.5 + 0.5 * np.sin(2 * np.pi * self.freq * np.hypot(ru, rv) + noise)
        p = p[..., None].astype(np.float32)
        return self.colour_a * (1 - p) + self.colour_b * p


@dataclass(frozen=True)
class _Object:
    """An object's outline, texture and smooth trajectory."""

    outline: np.ndarray  # _ANGLE_BINS radii of a unit-size shape, max 1
    texture: _Texture
    size: float  # radius in pixels at scale 1
    scale_amp: float
    scale_freq: float
    scale_phase: float
    angle0: float
    omega: float  # radians per frame


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    # Random hue with high-ish saturation, so objects differ from each other and the background.
    hue = rng.uniform(0, 6)
    sat = rng.uniform(0.4, 1.0)
    val = rng.uniform(90, 255)
    x = sat * (1 - abs(hue % 2 - 1))
    rgb = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(hue) % 6]
    return (val * (1 - sat + np.array(rgb) * sat)).astype(np.float32)


def _random_texture(rng: np.random.Generator, scale: float) -> _Texture:
    n_waves = 4
    waves = np.stack(
        [
            rng.uniform(-3, 3, n_waves) / scale,
            rng.uniform(-3, 3, n_waves) / scale,
            rng.uniform(0, 2 * np.pi, n_waves),
            rng.uniform(0.2, 1.0, n_waves),
        ],
        axis=1,
    ).astype(np.float32)
    return _Texture(
        kind=int(rng.integers(0, 4)),
        colour_a=_random_colour(rng),
        colour_b=_random_colour(rng),
        freq=float(rng.uniform(1.5, 5.0)) / scale,
        angle=float(rng.uniform(0, np.pi)),
        waves=waves,
    )


def _random_outline(rng: np.random.Generator) -> np.ndarray:
    """Radii r(phi) of an ellipse, a star-shaped polygon or a smooth blob, normalised to max 1."""
    phi = np.linspace(0, 2 * np.pi, _ANGLE_BINS, endpoint=False)
    kind = int(rng.integers(0, 3))
    if kind == 0:  # ellipse with semi-axes 1 and b
        b = rng.uniform(0.45, 1.0)
        r = b / np.sqrt((b * np.cos(phi)) ** 2 + np.sin(phi) ** 2)
    elif kind == 1:  # polygon with 3..8 vertices sorted by angle
        n = int(rng.integers(3, 9))
        va = np.sort(((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n) % (2 * np.pi))
        vr = rng.uniform(0.55, 1.0, n)
        px, py = vr * np.cos(va), vr * np.sin(va)
        # Edge i runs from vertex i to vertex i+1; the ray at phi hits the edge whose angular
        # sector contains phi: r = (P1 x E) / (d x E).
        idx = np.searchsorted(va, phi, side="right") - 1  # vertex before phi (-1 wraps)
        i1 = idx % n
        i2 = (idx + 1) % n
        ex, ey = px[i2] - px[i1], py[i2] - py[i1]
        num = px[i1] * ey - py[i1] * ex
        den = np.cos(phi) * ey - np.sin(phi) * ex
        r = np.abs(num / np.where(np.abs(den) < 1e-9, 1e-9, den))
    else:  # blob: a few random harmonics
        r = np.ones_like(phi)
        for k in range(2, 6):
            r += rng.uniform(0, 0.35 / k * 2) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.05, None)
    return (r / r.max()).astype(np.float32)


class _Scene:
    """Background, objects and their trajectories, sampled once from the seed."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, num_objects: int):
        self.h, self.w = height, width
        short = min(height, width)
        self.bg_tex = _random_texture(rng, short / 4)
        self.bg_tex2 = _random_texture(rng, short / 12)
        gdir = rng.uniform(0, 2 * np.pi)
        self.grad = (np.cos(gdir), np.sin(gdir), rng.uniform(-60, 60))
        self.bg_mix = float(rng.uniform(0.15, 0.5))
        self.pan = rng.uniform(-0.01, 0.01, 2) * short  # pixels per frame of background motion
        self.depth = rng.permutation(num_objects)  # drawing order, back to front
        # Objects get smaller as there are more of them, so they still fit.
        base = short * rng.uniform(0.12, 0.24, num_objects) / max(1.0, np.sqrt(num_objects / 2))
        self.objects = [
            _Object(
                outline=_random_outline(rng),
                texture=_random_texture(rng, float(base[k]) / 2),
                size=float(base[k]),
                scale_amp=float(rng.uniform(0.0, 0.3)),
                scale_freq=float(rng.uniform(0.05, 0.25)),
                scale_phase=float(rng.uniform(0, 2 * np.pi)),
                angle0=float(rng.uniform(0, 2 * np.pi)),
                omega=float(rng.uniform(-0.08, 0.08)),
            )
            for k in range(num_objects)
        ]
        self.brightness_freq = rng.uniform(0.05, 0.2)
        self.brightness_amp = rng.uniform(0.0, 0.08)

    def scale(self, k: int, t: int) -> float:
        o = self.objects[k]
        return float(np.exp(o.scale_amp * np.sin(o.scale_freq * t + o.scale_phase)))

    def background(self, t: int, window: Window) -> np.ndarray:
        """h x w x 3 float32 background of frame t in ``window`` (panning texture + gradient)."""
        y0, x0, h, w = window
        yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
        u = xx + self.pan[0] * t
        v = yy + self.pan[1] * t
        img = self.bg_tex.render(u, v) * (1 - self.bg_mix) + self.bg_tex2.render(u, v) * self.bg_mix
        gx, gy, gamp = self.grad
        g = gamp * ((gx * xx + gy * yy) / max(self.h, self.w) - 0.5)
        return img + g[..., None]


def _trajectories(
    rng: np.random.Generator, scene: _Scene, num_frames: int, start: np.ndarray
) -> np.ndarray:
    """Smooth, border-bouncing centre positions, K x T x 2 (x, y) in pixels."""
    k = len(scene.objects)
    short = min(scene.h, scene.w)
    pos = np.empty((k, num_frames, 2), np.float64)
    vel = rng.normal(0, 0.025 * short, (k, 2))
    lo = np.array([0.0, 0.0])
    hi = np.array([scene.w - 1.0, scene.h - 1.0])
    p = start.astype(np.float64).copy()
    for t in range(num_frames):
        pos[:, t] = p
        vel = 0.9 * vel + rng.normal(0, 0.008 * short, (k, 2))  # smooth random acceleration
        p = p + vel
        # Bounce the centre off the borders so objects stay (mostly) in view.
        below, above = p < lo, p > hi
        p = np.where(below, 2 * lo - p, np.where(above, 2 * hi - p, p))
        vel = np.where(below | above, -vel, vel)
    return pos


def _render(
    scene: _Scene,
    t: int,
    centres: np.ndarray,
    image: bool = True,
    window: Window | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Frame t as (h x w x 3 float32 image, h x w uint8 labels); centres K x 2 (x, y).

    Only ``window`` (top, left, height, width; default the whole frame) is rendered. With
    ``image=False`` only the labels are computed (the image is None): object placement needs
    many label maps and no pixels.
    """
    wy, wx, wh, ww = window or (0, 0, scene.h, scene.w)
    img = scene.background(t, (wy, wx, wh, ww)) if image else None
    labels = np.zeros((wh, ww), np.uint8)
    for k in scene.depth:  # back to front: later objects occlude earlier ones
        o = scene.objects[k]
        radius = o.size * scene.scale(k, t)
        cx, cy = centres[k]
        x0 = int(max(wx, np.floor(cx - radius)))
        x1 = int(min(wx + ww, np.ceil(cx + radius) + 1))
        y0 = int(max(wy, np.floor(cy - radius)))
        y1 = int(min(wy + wh, np.ceil(cy + radius) + 1))
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ang = o.angle0 + o.omega * t
        dx, dy = (xx - cx) / radius, (yy - cy) / radius
        c, s = np.cos(ang), np.sin(ang)
        u, v = c * dx + s * dy, -s * dx + c * dy  # object-local coordinates (unit radius)
        phi = np.arctan2(v, u) % (2 * np.pi)
        bins = (phi * (_ANGLE_BINS / (2 * np.pi))).astype(np.int64) % _ANGLE_BINS
        inside = np.hypot(u, v) <= o.outline[bins]  # h' x w'
        if not inside.any():
            continue
        ys, xs = slice(y0 - wy, y1 - wy), slice(x0 - wx, x1 - wx)  # the box in the window
        if img is not None:  # the texture moves and rotates with the object
            img[ys, xs][inside] = o.texture.render(u * o.size, v * o.size)[inside]
        labels[ys, xs][inside] = k + 1
    return img, labels


def _finish(img: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
    noisy = img * gain + rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _check_args(num_frames: int, height: int, width: int, num_objects: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if height < 16 or width < 16:
        raise ValueError(f"height and width must be >= 16, got {height}x{width}")
    if not 1 <= num_objects <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be in 1..{MAX_OBJECTS}, got {num_objects}")


def make_clip(
    num_frames: int,
    height: int,
    width: int,
    num_objects: int,
    seed: int,
    window: Window | None = None,
) -> SyntheticClip:
    """Render a synthetic clip of textured shapes moving, scaling, rotating and occluding.

    Args:
        num_frames: T, number of frames.
        height: H in pixels.
        width: W in pixels.
        num_objects: K, number of objects (labels 1..K), each visible in frame 0.
        seed: Seed; the clip is a deterministic function of all arguments.
        window: (top, left, height, width) of the part of the H x W scene to render (None = all
            of it). Training crops of a large scene cost only their own pixels; objects outside
            the window are simply not in it.

    Returns:
        A ``SyntheticClip`` with frames T x h x w x 3 uint8 and masks T x h x w uint8 (h x w the
        window's size).
    """
    _check_args(num_frames, height, width, num_objects)
    if window is not None:
        wy, wx, wh, ww = window
        if wh < 1 or ww < 1 or wy < 0 or wx < 0 or wy + wh > height or wx + ww > width:
            raise ValueError(f"window {window} does not fit in a {height}x{width} frame")
    else:
        wh, ww = height, width
    rng = np.random.default_rng(seed)
    scene = _Scene(rng, height, width, num_objects)
    start = _place_objects(rng, scene, height, width, num_objects)
    centres = _trajectories(rng, scene, num_frames, start)  # K x T x 2
    frames = np.empty((num_frames, wh, ww, 3), np.uint8)
    masks = np.empty((num_frames, wh, ww), np.uint8)
    for t in range(num_frames):
        img, lab = _render(scene, t, centres[:, t], window=window)
        gain = 1.0 + scene.brightness_amp * np.sin(scene.brightness_freq * t)
        frames[t] = _finish(img, rng, gain)
        masks[t] = lab
    return SyntheticClip(frames=frames, masks=masks)


def _place_objects(
    rng: np.random.Generator, scene: _Scene, height: int, width: int, num_objects: int
) -> np.ndarray:
    """Frame-0 centres (K x 2, x then y) at which each object is well visible (the best of up
    to 30 deterministic tries); in a crowded frame hidden objects are brought to the front
    (``scene.depth`` is reordered)."""
    margin = np.array([0.15 * width, 0.15 * height])
    best = None
    for _ in range(30):
        start = rng.uniform(margin, np.array([width, height]) - margin, (num_objects, 2))
        _, lab = _render(scene, 0, start, image=False)
        full = [_render_single_area(scene, k, start[k]) for k in range(num_objects)]
        visible = np.array([np.count_nonzero(lab == k + 1) for k in range(num_objects)])
        frac = visible / np.maximum(full, 1)
        score = frac.min()
        if best is None or score > best[0]:
            best = (score, start)
        if score >= _MIN_VISIBLE_FRACTION:
            break
    start = best[1]
    if best[0] <= 0:  # crowded frame: bring hidden objects to the front so all are visible
        _, lab = _render(scene, 0, start, image=False)
        hidden = [k for k in range(num_objects) if not (lab == k + 1).any()]
        order = [k for k in scene.depth if k not in hidden] + hidden
        scene.depth = np.array(order)
    return start


def _render_single_area(scene: _Scene, k: int, centre: np.ndarray) -> int:
    """Pixels object k would cover in frame 0 at ``centre`` without occluders (clipped to view)."""
    saved = scene.depth
    scene.depth = np.array([k])
    try:
        _, lab = _render(scene, 0, np.repeat(centre[None], len(scene.objects), 0), image=False)
    finally:
        scene.depth = saved
    return int(np.count_nonzero(lab))


def make_static_image(
    height: int, width: int, num_objects: int, seed: int, window: Window | None = None
) -> SyntheticClip:
    """One synthetic image with its mask (a clip of one frame), for the static training stage.

    Args:
        height: H in pixels.
        width: W in pixels.
        num_objects: K objects, each visible in the whole frame.
        seed: Seed.
        window: Part of the frame to render, as in ``make_clip``.

    Returns:
        A ``SyntheticClip`` with frames 1 x h x w x 3 and masks 1 x h x w.
    """
    return make_clip(1, height, width, num_objects, seed, window)


def deform_to_clip(
    image: np.ndarray, mask: np.ndarray, num_frames: int, seed: int, strength: float = 1.0
) -> SyntheticClip:
    """Turn one image + mask into a pseudo-video by random affine and elastic deformations.

    Frame 0 is the image itself; every later frame is an independent random deformation of it
    (rotation, scale, shear, translation and a smooth elastic field), as the static stage of
    STCN training does.

    Args:
        image: H x W x 3 uint8 RGB.
        mask: H x W uint8 labels.
        num_frames: T >= 1.
        seed: Seed of the deformations.
        strength: Multiplier of all deformation magnitudes (0 = copies of the image).

    Returns:
        A ``SyntheticClip`` with frames T x H x W x 3 and masks T x H x W.
    """
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(
            f"expected H x W x 3 image and H x W mask, got {image.shape}, {mask.shape}"
        )
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    frames = [image]
    masks = [mask]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    for _ in range(1, num_frames):
        ang = np.deg2rad(rng.uniform(-15, 15)) * strength
        sc = np.exp(rng.uniform(-0.1, 0.1) * strength)
        shear = rng.uniform(-0.1, 0.1) * strength
        tx, ty = rng.uniform(-0.06, 0.06, 2) * np.array([w, h]) * strength
        # Inverse map: output pixel -> source pixel.
        c, s = np.cos(ang), np.sin(ang)
        a = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) / sc
        dx, dy = xx - cx - tx, yy - cy - ty
        sx = a[0, 0] * dx + a[0, 1] * dy + cx
        sy = a[1, 0] * dx + a[1, 1] * dy + cy
        ex, ey = _elastic_field(rng, h, w, 0.02 * min(h, w) * strength)
        sx, sy = sx + ex, sy + ey
        frames.append(_sample_bilinear(image, sx, sy))
        masks.append(_sample_nearest(mask, sx, sy))
    return SyntheticClip(frames=np.stack(frames), masks=np.stack(masks))


def _elastic_field(
    rng: np.random.Generator, h: int, w: int, amplitude: float
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement field (two H x W float32) from upsampled coarse noise."""
    gh, gw = 4, 6
    coarse = rng.normal(0, amplitude, (2, gh, gw)).astype(np.float32)
    ys = np.linspace(0, gh - 1, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1, w, dtype=np.float32)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return _sample_bilinear(coarse[0], xx, yy), _sample_bilinear(coarse[1], xx, yy)


def _sample_bilinear(img: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Bilinear sampling with border clamping; img H x W (x C), sx/sy H' x W' -> H' x W' (x C)."""
    h, w = img.shape[:2]
    sx = np.clip(sx, 0, w - 1)
    sy = np.clip(sy, 0, h - 1)
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    f = img.astype(np.float32)
    top = f[y0, x0] * (1 - fx) + f[y0, x1] * fx
    bot = f[y1, x0] * (1 - fx) + f[y1, x1] * fx
    out = top * (1 - fy) + bot * fy
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(img.dtype)


def _sample_nearest(img: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Nearest-neighbour sampling with border clamping (for label maps)."""
    h, w = img.shape[:2]
    xi = np.clip(np.rint(sx), 0, w - 1).astype(np.int64)
    yi = np.clip(np.rint(sy), 0, h - 1).astype(np.int64)
    return img[yi, xi]
