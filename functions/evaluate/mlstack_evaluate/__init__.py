"""Measure every candidate's ONNX export on the holdout, compare with production, decide, and
rehearse serving the winner.

Handler: ``mlstack_evaluate.app.handler`` (template.yaml).
"""
