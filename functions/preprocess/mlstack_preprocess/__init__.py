"""Validate the spec and the CSV, infer the schema, split train/holdout, list the candidates.

Handler: ``mlstack_preprocess.app.handler`` (template.yaml).
"""
