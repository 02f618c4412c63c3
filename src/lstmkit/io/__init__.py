"""Other formats in and out: PyTorch (:mod:`lstmkit.io.pytorch`) and ONNX
(:mod:`lstmkit.io.onnx`)."""
