"""The per-model run lock that queues a second upload behind a running one.

Handler: ``mlstack_runlock.app.handler`` (template.yaml).
"""
