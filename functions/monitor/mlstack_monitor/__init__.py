"""The scheduled drift check: PSI of served inputs against the training baseline.

Handler: ``mlstack_monitor.app.handler`` (template.yaml).
"""
