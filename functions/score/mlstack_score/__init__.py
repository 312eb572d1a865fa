"""Batch scoring: the steps of the scoring state machine (resolve the version, score a batch of
CSV rows, summarise the job).

Handler: ``mlstack_score.app.handler`` (template.yaml).
"""
