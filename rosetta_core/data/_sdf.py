"""Signed distance functions of the world's shape kinds (in place, float32 numpy)."""

from __future__ import annotations


import numpy as np

_F = np.float32

# Shape geometry relative to the object size s (a radius in pixels); areas are 1.9-3.1 s^2.
_SQUARE_HALF = _F(0.85)
_TRIANGLE_R = _F(1.3)  # circumradius; the triangle is centred on its centroid
_STAR_R, _STAR_INNER = _F(1.3), _F(0.5)  # outer radius, inner/outer radius ratio
_CROSS_ARM, _CROSS_HALF_WIDTH = _F(1.0), _F(0.36)

_COS30 = _F(np.cos(np.pi / 6))


# ----------------------------------------------------------------- signed distances
# Each takes local coordinates u (right) and w (up in the shape's frame), shape (m, h, w), sizes
# s (m, 1, 1) and scratch arrays t, v like u; it leaves the signed distance in pixels (exact
# near edges) in u. Everything is in place: fresh memory costs more than the arithmetic here.
def _sdf_circle(u, w, s, t, v):
    np.multiply(u, u, out=u)
    np.multiply(w, w, out=t)
    u += t
    np.sqrt(u, out=u)
    u -= s


def _sdf_square(u, w, s, t, v):
    np.abs(u, out=u)
    np.abs(w, out=w)
    np.maximum(u, w, out=u)
    u -= _SQUARE_HALF * s


def _sdf_triangle(u, w, s, t, v):
    # Equilateral, apex up: the base (outward normal (0, -1)) and the two sides (normals
    # (+-cos30, 1/2)) all lie at the inradius R/2 from the centroid.
    np.abs(u, out=u)
    u *= _COS30
    np.multiply(w, _F(0.5), out=t)
    u += t
    np.negative(w, out=w)
    np.maximum(u, w, out=u)
    u -= _F(0.5) * _TRIANGLE_R * s


def _reflect(u, w, t, angle):
    """Mirror the points lying clockwise-beyond the ray at ``angle`` (from the up axis) onto
    the other side of it, in place."""
    cu, cw = _F(np.cos(angle)), _F(-np.sin(angle))  # unit normal pointing beyond the ray
    np.multiply(u, cu / cw, out=t)
    t += w
    t *= _F(2) * cw  # t = 2 * (p . normal)
    np.maximum(t, 0, out=t)
    t *= cu
    u -= t
    t *= cw / cu
    w -= t


def _star_edge() -> tuple[float, float, float]:
    """Outward normal (nu, nw) of the edge from the tip (0, R) to the inner vertex at 36 deg,
    and its offset from the centre, for R = 1."""
    tip = np.array([0.0, 1.0])
    vertex = float(_STAR_INNER) * np.array([np.sin(np.pi / 5), np.cos(np.pi / 5)])
    e = vertex - tip
    n = np.array([-e[1], e[0]]) / np.hypot(*e)
    return float(n[0]), float(n[1]), float(tip @ n)


_STAR_NU, _STAR_NW, _STAR_OFFSET = (_F(v) for v in _star_edge())


def _sdf_star(u, w, s, t, v):
    # Fold the plane into the wedge [0, 36 deg] from the up axis with the star's mirror lines
    # (0, 36, 72, ... deg), then take the distance to the edge from the tip to the inner vertex.
    np.abs(u, out=u)
    _reflect(u, w, t, 2 * np.pi / 5)
    np.abs(u, out=u)
    _reflect(u, w, t, np.pi / 5)
    u *= _STAR_NU
    w *= _STAR_NW
    u += w
    u -= (_STAR_OFFSET * _STAR_R) * s


def _sdf_cross(u, w, s, t, v):
    np.abs(u, out=u)
    np.abs(w, out=w)
    arm, half = _CROSS_ARM * s, _CROSS_HALF_WIDTH * s
    np.subtract(u, arm, out=t)
    np.subtract(w, half, out=v)
    np.maximum(t, v, out=t)  # the horizontal bar
    u -= half
    w -= arm
    np.maximum(u, w, out=u)  # the vertical bar
    np.minimum(u, t, out=u)


_SDF = (_sdf_circle, _sdf_square, _sdf_triangle, _sdf_star, _sdf_cross)
