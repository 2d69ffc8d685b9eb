"""bevfuse: real-time camera + LiDAR + radar + GNSS/IMU fusion into a BEV 3D object detector."""

__version__ = "0.1.0"
