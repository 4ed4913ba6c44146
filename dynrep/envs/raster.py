"""Batched anti-aliased 2-D drawing in data coordinates, laid out like a matplotlib figure.

The causal benchmarks (Pendulum, Flow) were drawn with matplotlib on a 1 x 1 inch figure
whose default axes box covers figure fractions ``x in [0.125, 0.9]``, ``y in [0.11, 0.88]``
and clips every artist. :class:`Canvas` reproduces that layout with numpy: shapes are
given in data units (one value per image of the batch), line widths in points, and each
shape's pixel coverage comes from its signed distance (``clip(0.5 - distance, 0, 1)``),
which anti-aliases edges without supersampling.

Two rules of matplotlib's Agg backend are reproduced because they move edges by up to half a
pixel: the clip box is rounded to whole pixels, and a path made only of horizontal and vertical
segments (a rectangle, an axis-parallel stroke) has its vertices snapped to pixel centres when
its stroke is an odd number of pixels wide (rounded), to pixel corners when even.
"""
from __future__ import annotations

import math

import numpy as np

#: matplotlib's default axes box (left, bottom, right, top) in figure fractions.
AXES_BOX = (0.125, 0.11, 0.9, 0.88)
#: Points per inch: line widths are in points, the figure is one inch wide.
POINTS_PER_INCH = 72.0
#: Half the default 1-point edge matplotlib strokes around a filled patch, in points.
PATCH_EDGE = 0.5

COLOURS = {
    "black": (0, 0, 0),
    "firebrick": (178, 34, 34),
    "orange": (255, 165, 0),
    "lightskyblue": (135, 206, 250),
}


class Canvas:
    """A batch of ``n`` white RGB images of ``size x size`` pixels showing the data window
    ``xlim x ylim`` inside :data:`AXES_BOX` (a 1-inch figure saved at ``dpi = size``).

    Every drawing method takes per-image arrays ``[n]`` (or scalars) in data units and
    composites a flat colour over the image with anti-aliased coverage, clipped to the axes.
    Each shape is evaluated only in a window around it (one window size for the batch, placed
    per image), so small shapes cost little.
    """

    def __init__(self, n: int, size: int, xlim: tuple[float, float], ylim: tuple[float, float]):
        self.n, self.size = n, size
        left, bottom, right, top = AXES_BOX
        self.x_scale = (right - left) * size / (xlim[1] - xlim[0])  # pixels per data unit
        self.y_scale = (top - bottom) * size / (ylim[1] - ylim[0])
        self.x_origin = left * size - xlim[0] * self.x_scale
        self.y_origin = (1 - bottom) * size + ylim[0] * self.y_scale  # image rows grow downwards
        # Agg rounds the clip box to whole pixels (half up), so clipped edges are hard, not anti-aliased
        self.box_x = (math.floor(left * size + 0.5), math.floor(right * size + 0.5))
        self.box_y = (math.floor((1 - top) * size + 0.5), math.floor((1 - bottom) * size + 0.5))
        self.image = np.ones((n, 3, size, size), dtype=np.float32)

    def _x(self, x) -> np.ndarray:
        return np.broadcast_to(self.x_origin + np.asarray(x, dtype=np.float32) * self.x_scale, (self.n,))

    def _y(self, y) -> np.ndarray:
        return np.broadcast_to(self.y_origin - np.asarray(y, dtype=np.float32) * self.y_scale, (self.n,))

    def points(self, width: float) -> float:
        """A length in points as pixels."""
        return width * self.size / POINTS_PER_INCH

    @staticmethod
    def _snap(coords: np.ndarray, width: float, rectilinear: np.ndarray | None = None) -> np.ndarray:
        """Pixel coordinates ``[n, P]`` snapped as Agg snaps a rectilinear path stroked ``width`` pixels wide
        (images where ``rectilinear [n]`` is False keep theirs; None: all images are rectilinear)."""
        offset = 0.5 if int(np.floor(width + 0.5)) % 2 else 0.0
        snapped = np.floor(coords + 0.5) + offset
        return snapped if rectilinear is None else np.where(rectilinear[:, None], snapped, coords)

    def _window(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start pixel ``[n]`` and a common length of a window covering ``[lo, hi]`` (pixels, per image)."""
        length = int(min(self.size, np.ceil(np.max(hi - lo, initial=0.0)) + 3))
        start = np.clip(np.floor(lo).astype(np.int64) - 1, 0, self.size - length)
        return start, length

    def _pixels(self, x_lo, x_hi, y_lo, y_hi) -> tuple[np.ndarray, np.ndarray, tuple]:
        """Pixel-centre coordinates ``px [n, 1, w]``, ``py [n, h, 1]`` of each image's window around the
        pixel box ``[x_lo, x_hi] x [y_lo, y_hi]``, and the window's placement for :meth:`_paint`."""
        col0, w = self._window(x_lo, x_hi)
        row0, h = self._window(y_lo, y_hi)
        px = (col0[:, None, None] + np.arange(w)[None, None, :] + 0.5).astype(np.float32)
        py = (row0[:, None, None] + np.arange(h)[None, :, None] + 0.5).astype(np.float32)
        return px, py, (row0, col0, h, w)

    def _paint(self, distance: np.ndarray, colour: str, px: np.ndarray, py: np.ndarray, place: tuple) -> None:
        """Composite ``colour`` with coverage ``clip(0.5 - distance [n, h, w] in pixels)`` inside the axes."""
        inside = (np.clip(np.minimum(px - self.box_x[0], self.box_x[1] - px) + 0.5, 0, 1)
                  * np.clip(np.minimum(py - self.box_y[0], self.box_y[1] - py) + 0.5, 0, 1))
        alpha = np.clip(0.5 - distance, 0.0, 1.0) * inside
        row0, col0, h, w = place
        plane = self.size * self.size
        flat = self.image.reshape(-1)  # one flat index per window pixel is much cheaper than 4-D fancy indexing
        index = ((np.arange(self.n)[:, None, None] * 3 * plane) + (row0[:, None, None] + np.arange(h)[None, :, None])
                 * self.size + col0[:, None, None] + np.arange(w)[None, None, :])
        for channel, value in enumerate(COLOURS[colour]):
            pixels = flat[index + channel * plane]
            flat[index + channel * plane] = pixels + alpha * (value / 255 - pixels)

    def disc(self, x, y, radius, colour: str) -> None:
        """A filled circle of ``radius`` data units (an ellipse in pixels when the axes' scales differ)."""
        r = np.broadcast_to(np.asarray(radius, dtype=np.float32), (self.n,))
        cx, cy, rx, ry = self._x(x), self._y(y), r * self.x_scale, r * self.y_scale
        reach = self.points(PATCH_EDGE) + 1
        px, py, place = self._pixels(cx - rx - reach, cx + rx + reach, cy - ry - reach, cy + ry + reach)
        rx, ry = rx[:, None, None], ry[:, None, None]
        dx, dy = px - cx[:, None, None], py - cy[:, None, None]
        level = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
        # first-order distance to the ellipse: (level - 1) / |grad level|
        grad = np.sqrt((dx / rx ** 2) ** 2 + (dy / ry ** 2) ** 2) / np.maximum(level, 1e-6)
        distance = (level - 1) / np.maximum(grad, 1e-6) - self.points(PATCH_EDGE)
        self._paint(distance, colour, px, py, place)

    def rectangle(self, x0, y0, x1, y1, colour: str) -> None:
        """A filled axis-aligned rectangle between corners ``(x0, y0)`` and ``(x1, y1)`` (corners snapped)."""
        edge = self.points(PATCH_EDGE)
        xs = self._snap(np.stack([self._x(x0), self._x(x1)], axis=1), 2 * edge)
        ys = self._snap(np.stack([self._y(y0), self._y(y1)], axis=1), 2 * edge)
        left, right, top, bottom = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
        px, py, place = self._pixels(left - edge - 1, right + edge + 1, top - edge - 1, bottom + edge + 1)
        outside = np.maximum(np.maximum(left[:, None, None] - px, px - right[:, None, None]),
                             np.maximum(top[:, None, None] - py, py - bottom[:, None, None]))
        self._paint(outside - edge, colour, px, py, place)

    def segment(self, x0, y0, x1, y1, width: float, colour: str, *, caps: str = "butt") -> None:
        """A straight stroke of ``width`` points from ``(x0, y0)`` to ``(x1, y1)``.

        ``caps``: ``"butt"`` (ends cut at the end points: a stroked 2-point matplotlib Polygon)
        or ``"projecting"`` (extended by half the width: matplotlib lines).
        """
        self.polyline(np.stack([np.broadcast_to(np.asarray(x0, dtype=np.float32), (self.n,)),
                                np.broadcast_to(np.asarray(x1, dtype=np.float32), (self.n,))], axis=1),
                      np.stack([np.broadcast_to(np.asarray(y0, dtype=np.float32), (self.n,)),
                                np.broadcast_to(np.asarray(y1, dtype=np.float32), (self.n,))], axis=1),
                      width, colour, caps=caps)

    def polyline(self, x: np.ndarray, y: np.ndarray, width: float, colour: str, *, caps: str = "round") -> None:
        """A stroke of ``width`` points through the points ``x, y [n, P]``, painted once (no double blending
        where segments overlap). Joins are round; ``caps`` shape the two ends: ``"round"``, ``"butt"`` or
        ``"projecting"``. An image whose path has only horizontal and vertical segments is snapped."""
        if caps not in ("round", "butt", "projecting"):
            raise ValueError(f"caps must be 'round', 'butt' or 'projecting', got {caps!r}")
        xs = self.x_origin + np.asarray(x, dtype=np.float32) * self.x_scale
        ys = self.y_origin - np.asarray(y, dtype=np.float32) * self.y_scale
        steps_x, steps_y = np.abs(np.diff(xs, axis=1)), np.abs(np.diff(ys, axis=1))
        rectilinear = np.all((steps_x < 1e-4) | (steps_y < 1e-4), axis=1)  # Agg's test, in pixels
        xs, ys = self._snap(xs, self.points(width), rectilinear), self._snap(ys, self.points(width), rectilinear)
        half = self.points(width) / 2
        reach = half * 1.5 + 1
        px, py, place = self._pixels(xs.min(1) - reach, xs.max(1) + reach, ys.min(1) - reach, ys.max(1) + reach)
        distance = None
        last = xs.shape[1] - 2
        for p in range(last + 1):  # a loop over path vertices only; each segment is batched
            ax, ay = xs[:, p, None, None], ys[:, p, None, None]
            ux, uy = xs[:, p + 1, None, None] - ax, ys[:, p + 1, None, None] - ay
            length = np.sqrt(ux ** 2 + uy ** 2)
            ux, uy = ux / np.maximum(length, 1e-6), uy / np.maximum(length, 1e-6)
            along = (px - ax) * ux + (py - ay) * uy
            across = np.abs((px - ax) * uy - (py - ay) * ux)
            # a capsule, except that the path's own ends take the requested cap
            lo = 0.0 if (p > 0 or caps == "round") else (-half if caps == "projecting" else 0.0)
            hi = length if (p < last or caps == "round") else length + (half if caps == "projecting" else 0.0)
            flat_start, flat_end = p == 0 and caps != "round", p == last and caps != "round"
            t = np.clip(along, lo, hi)
            d = np.sqrt((along - t) ** 2 + across ** 2)
            # a flat end is a line across the stroke: pixels just inside it are nearer to it than to the sides
            if flat_start:
                d = np.where(along < lo, np.maximum(lo - along, across - half) + half, np.maximum(d, lo - along + half))
            if flat_end:
                d = np.where(along > hi, np.maximum(along - hi, across - half) + half, np.maximum(d, along - hi + half))
            distance = d if distance is None else np.minimum(distance, d)
        self._paint(distance - half, colour, px, py, place)

    def to_uint8(self) -> np.ndarray:
        """The images ``[n, 3, size, size]`` uint8."""
        self.image *= 255  # in place: the canvas is finished
        self.image += 0.5  # values are in [0, 255.5): truncation after +0.5 rounds
        return self.image.astype(np.uint8)
