"""Packaging of bevfuse: the runtime library ``perception``, the calibration core ``calib`` and the
CUDA kernel sources (package data of ``cuda_kernels``, compiled at run time through NVRTC)."""

from setuptools import find_packages, setup

CORE = [
    "numpy>=1.24",
    "numba>=0.59",
    "pyyaml>=6.0",
    "rosbags>=0.10",
    "pymap3d>=3.0",
    "pyarrow>=14",
    "opencv-python-headless>=4.8",
    "tqdm>=4.60",
    "torch>=2.1",
]

EXTRAS = {
    "gpu": ["cupy-cuda13x>=13.0"],
    "tensorrt": ["tensorrt>=10.0"],
    "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
    "viz": ["matplotlib>=3.7", "pillow>=10"],
    # the runtime node's transports: Zenoh (rmw_zenoh-compatible keys) and the Foxglove WebSocket server
    "node": ["eclipse-zenoh>=1.0", "foxglove-sdk>=0.30"],
    # ROS 2 (Kilted) from its pip wheels, for `--transport ros2` where no ROS 2 is installed: rclpy,
    # Fast DDS and the message packages bevfuse speaks that have wheels (vision_msgs has none). The
    # wheels add a .pth (ros-wheels-bootstrapper) that re-executes Python with LD_LIBRARY_PATH set.
    # They exist for Linux x86_64 only (none for aarch64, e.g. a Jetson: there, source a ROS 2
    # install instead); elsewhere the extra installs nothing and the ROS 2 tests skip, saying why.
    "ros2": [f"{req}; platform_system == 'Linux' and platform_machine == 'x86_64'" for req in (
        "ros-rclpy>=9.1", "ros-rmw-fastrtps-cpp>=9.3", "ros-std-msgs>=5.5", "ros-sensor-msgs>=5.5", "ros-diagnostic-msgs>=5.5",
        "ros-visualization-msgs>=5.5", "ros-geometry-msgs>=5.5", "ros-nav-msgs>=5.5", "ros-rosgraph-msgs>=2.3")],
    # open3d is for desktop calibration tools only: the on-vehicle core never imports it.
    "calib": ["open3d>=0.18"],
    # nuscenes-devkit itself is installed by the Makefile with --no-deps (its metadata pins numpy<2,
    # yet its detection evaluation runs on numpy 2); these are what its import needs.
    "test": ["pytest>=8", "ruff>=0.5", "mcap>=1.1", "mcap-ros2-support>=0.5", "websocket-client>=1.7", "pyquaternion>=0.9",
             "cachetools>=5", "scikit-learn>=1.3",
             # NVRTC, the kernels' run-time compiler, checks them without a GPU (tests/test_cuda_abi.py):
             # CUDA 13's, and CUDA 11.8's for Xavier (sm_72), which CUDA 13 no longer builds.
             "nvidia-cuda-nvrtc>=13.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
             "nvidia-cuda-nvrtc-cu11>=11.8; platform_system == 'Linux' and platform_machine == 'x86_64'"],
}

setup(
    name="bevfuse",
    version="0.1.0",
    description="Real-time camera + LiDAR + radar + GNSS/IMU BEV fusion perception toolkit",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["perception", "perception.*", "calib", "calib.*", "cuda_kernels"]),
    package_data={"cuda_kernels": ["*.cu", "*.cuh"], "perception": ["py.typed"], "perception.io": ["msg/*.msg", "msg/**/*.msg"]},
    include_package_data=True,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["bevfuse = perception.cli:main"]},
)
