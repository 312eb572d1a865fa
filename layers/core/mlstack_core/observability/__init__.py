"""Observability of every function, set up in one place: the service (POWERTOOLS_SERVICE_NAME, one
per function, set in template.yaml), the metrics namespace (POWERTOOLS_METRICS_NAMESPACE, one per
stack), and the dimension rules of docs/metrics.md.

- ``pipeline``: Powertools' Logger, Metrics and Tracer, for the pipeline functions (Trigger,
  RunLock, Preprocess, Train, Evaluate, Register, Monitor).
- ``requests``: the prediction function's request path: the same Logger, and the same EMF
  documents written by a lean writer instead of Powertools Metrics, with no Tracer (the X-Ray SDK
  alone cost ~190 ms of cold start; docs/performance.md).

This module imports nothing, so the request path does not pay for the pipeline's Tracer.
"""
