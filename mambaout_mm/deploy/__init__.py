"""Deployment: ONNX graphs of a trained model, the deployable folder, its check against the toolbox
and its benchmark on CPU backends.
"""
