"""bevfuse: real-time camera + LiDAR + radar + GNSS/IMU fusion into a BEV 3D object detector."""

import os as _os

# torch and numba each bring an OpenMP runtime whose idle threads spin for a while after every
# parallel region. Two runtimes on a small CPU (2 cores, or a Jetson sharing its cores with other
# nodes) then take turns spinning on each other's cores: measured on the 2-core development VM under
# load, the tiny network's forward went from 94 ms to 830 ms. Idle threads that sleep at once cost
# a wake-up per region instead. Set before torch or numba load their runtime; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
