"""ONNX and TFLite export of the three TrickVOS graphs, with verification (``vosx.export``)."""
