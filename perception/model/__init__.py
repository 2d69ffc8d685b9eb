"""The BEV fusion network: config, network, checkpoints, ONNX export, TensorRT, backends, training.

Modules (import them directly; this package imports nothing heavy, because ``perception.config``
loads ``perception.model.config`` and must not pull torch in):

- ``config``: ``ModelConfig`` (the ``model`` section) and the ``tiny`` / ``base`` presets;
- ``spec``: the named inputs and outputs (one table for the network, export and backends);
- ``network`` (``branches``, ``bev``, ``layers``): ``BEVFusionNet``, ``DeployModel``, ``build_model``;
- ``checkpoint``: ``save_checkpoint`` / ``load_checkpoint``;
- ``export``, ``trt_ops``, ``tensorrt``: ONNX export, TensorRT 10 operator check, engine build;
- ``backends``: ``make_backend('torch' | 'cuda-graph' | 'onnxruntime' | 'tensorrt', ...)``;
- ``data``, ``augment``, ``targets``, ``losses``, ``train``, ``evaluate``: the training path.
"""

__all__: list[str] = []
