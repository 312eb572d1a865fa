"""EventBridge S3 "Object Created" events → one training execution per object version.

Handler: ``mlstack_trigger.app.handler`` (template.yaml).
"""
