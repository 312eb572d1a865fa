"""Fit one candidate's scikit-learn pipeline and export it to ONNX (one Map iteration).

Handler: ``mlstack_train.app.handler`` (template.yaml).
"""
