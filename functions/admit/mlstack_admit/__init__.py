"""Admit a model trained elsewhere (``mlstack import``): inspect the uploaded ONNX file, check it
against the holdout and the serving contract, and prepare the run that joins training's path at
evaluation.

Handler: ``mlstack_admit.app.handler`` (template.yaml).
"""
