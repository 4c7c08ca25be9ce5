"""Export: static subnet -> ONNX / TFLite / CoreML, INT8 quantisation, parity checks, manifests."""
