"""Pre- and post-processing ops: one module per op, one public function dispatching on the device.

numpy arrays and CPU torch tensors run a numba implementation; CUDA torch tensors run the kernel in
``cuda_kernels/<op>.cu`` (NVRTC through CuPy, on torch's current stream). Shapes and dtypes are
checked at entry and a ``ShapeError`` names the argument.
"""

from perception.ops._recycle import recycled_bytes, release_recycled
from perception.ops.bev_nms import nms_bev
from perception.ops.camera_bev_gather import gather_camera_bev
from perception.ops.camera_bev_lut import CameraBevLut, bev_cell_centres, build_camera_bev_lut, feature_camera
from perception.ops.centerpoint_decode import BOX_FIELDS, DecodedBoxes, decode_centerpoint
from perception.ops.image_preprocess import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, preprocess_images
from perception.ops.jpeg_decode import decode_jpegs
from perception.ops.pillar_scatter import scatter_pillars
from perception.ops.pillarization import NUM_EXTRA_FEATURES, Pillars, PillarStats, pillarize
from perception.ops.radar_raster import RADAR_CHANNELS, RADAR_COLUMNS, RadarRaster, rasterize_radar

__all__ = [
    "BOX_FIELDS",
    "CameraBevLut",
    "DecodedBoxes",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageTransform",
    "NUM_EXTRA_FEATURES",
    "PillarStats",
    "Pillars",
    "RADAR_CHANNELS",
    "RADAR_COLUMNS",
    "RadarRaster",
    "bev_cell_centres",
    "build_camera_bev_lut",
    "decode_centerpoint",
    "decode_jpegs",
    "feature_camera",
    "gather_camera_bev",
    "nms_bev",
    "pillarize",
    "preprocess_images",
    "rasterize_radar",
    "recycled_bytes",
    "release_recycled",
    "scatter_pillars",
]
