"""Register the evaluated challenger; promote it or record its rejection.

Handler: ``mlstack_register.app.handler`` (template.yaml).
"""
