"""Offline checks of template.yaml as CloudFormation will see it, after the SAM transform.

Each ``check_*`` function takes the translated template (``translated.translate_offline``) and
returns a list of problems, empty when all is well, so the same functions serve the test of the
real template and the tests that mutate a copy of it and expect a problem. One module per check:
``asl`` (substitutions, transitions, a state machine's needs), ``iam`` (permissions, wildcards),
``metric_refs`` (metric names in alarms and the dashboard); ``code_calls`` reads the AWS actions
a function's code calls.
"""
