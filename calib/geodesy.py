"""Geodesy: WGS84 geodetic <-> ECEF <-> local ENU, through pymap3d.

The ``world`` frame of bevfuse is a local ENU frame (x east, y north, z up) with its origin at a
reference fix, usually the first GNSS fix of a log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pymap3d

__all__ = ["EnuOrigin", "ecef_to_geodetic", "geodetic_to_ecef"]


def geodetic_to_ecef(lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, alt_m: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(lat, lon, alt) on WGS84 to ECEF metres, ``(N, 3)`` (or ``(3,)`` for scalars)."""
    x, y, z = pymap3d.geodetic2ecef(np.asarray(lat_deg, float), np.asarray(lon_deg, float), np.asarray(alt_m, float))
    return np.stack([x, y, z], axis=-1).astype(np.float64)


def ecef_to_geodetic(ecef: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """ECEF ``(..., 3)`` to (lat deg, lon deg, alt m) ``(..., 3)``."""
    e = np.asarray(ecef, dtype=np.float64)
    lat, lon, alt = pymap3d.ecef2geodetic(e[..., 0], e[..., 1], e[..., 2])
    return np.stack([lat, lon, alt], axis=-1).astype(np.float64)


@dataclass(frozen=True)
class EnuOrigin:
    """The origin of a local ENU frame on the WGS84 ellipsoid."""

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0

    def to_enu(self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, alt_m: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Geodetic to ENU metres about this origin: ``(N, 3)`` east, north, up."""
        e, n, u = pymap3d.geodetic2enu(
            np.asarray(lat_deg, float), np.asarray(lon_deg, float), np.asarray(alt_m, float),
            self.lat_deg, self.lon_deg, self.alt_m,
        )
        return np.stack([e, n, u], axis=-1).astype(np.float64)

    def to_geodetic(self, enu: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """ENU ``(..., 3)`` about this origin to (lat deg, lon deg, alt m)."""
        p = np.asarray(enu, dtype=np.float64)
        lat, lon, alt = pymap3d.enu2geodetic(p[..., 0], p[..., 1], p[..., 2], self.lat_deg, self.lon_deg, self.alt_m)
        return np.stack([lat, lon, alt], axis=-1).astype(np.float64)
