"""WGS84 <-> ECEF <-> ENU conversions."""

import numpy as np
import pytest

from calib.geodesy import EnuOrigin, ecef_to_geodetic, geodetic_to_ecef


def test_ecef_of_known_points():
    np.testing.assert_allclose(geodetic_to_ecef(0.0, 0.0, 0.0), [6378137.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(geodetic_to_ecef(90.0, 0.0, 0.0), [0.0, 0.0, 6356752.314245], atol=1e-3)


def test_round_trips():
    lla = np.array([[49.01, 8.43, 112.0], [1.29, 103.79, 10.0], [42.36, -71.06, 5.0]])
    ecef = geodetic_to_ecef(lla[:, 0], lla[:, 1], lla[:, 2])
    np.testing.assert_allclose(ecef_to_geodetic(ecef), lla, atol=1e-7)
    origin = EnuOrigin(*lla[0])
    enu = origin.to_enu(lla[0, 0] + 0.001, lla[0, 1], lla[0, 2])
    # 0.001 deg of latitude is about 111 m north
    assert enu[1] == pytest.approx(111.2, abs=0.3)
    assert abs(enu[0]) < 1e-6
    np.testing.assert_allclose(origin.to_geodetic(enu), [lla[0, 0] + 0.001, lla[0, 1], lla[0, 2]], atol=1e-9)
