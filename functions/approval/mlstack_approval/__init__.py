"""A person's approval of a version the gate passed: holds the paused run's task token and answers
it from IAM-authorised API routes, with the caller's identity as the actor.

Handler: ``mlstack_approval.app.handler`` (template.yaml).
"""
