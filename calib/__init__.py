"""Calibration core: SE(3) transforms, camera models, geodesy and rig files."""
