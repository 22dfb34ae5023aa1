"""Triton model repository: one description (deploy/triton/models.yaml), two
rendered variants (local python-backend + onnxruntime on CPU, production
onnxruntime_onnx on GPU), and the runtime repository the local stack serves."""
