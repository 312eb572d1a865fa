"""The local cloud: template.yaml deployed into moto, with Lambda handlers run in-process.

The same template, state-machine definition and handler code as on AWS. The template is translated
by aws-sam-translator (the transform CloudFormation runs; ``mlstack.sam``) and created as a stack
in moto's CloudFormation. Only what moto lacks is adapted, each in one named function; the modules
below list theirs:

- ``packaging.package_code``: CodeUri/ContentUri/DefinitionUri are local paths, as before
  ``sam package``; code is zipped into an artifacts bucket and the definition is inlined.
- ``template_rewrites``: the translated template, where moto cannot create it as written
  (``DefinitionSubstitutions``, a Distributed Map's ItemBatcher, the RestApi deployed from SAM's
  OpenAPI body), and the bucket configuration moto's CloudFormation does not apply. Its docstring
  lists each rewrite.
- ``moto_patches``: moto's internals, patched where moto lacks something (EventBridge delivery
  to Lambda, Step Functions' status events and ResultWriter files, resource types its
  CloudFormation has no class for, atomic item writes) or is too slow (state copies, interpreter
  clients). Its docstring lists each patch; every moto function a patch relies on is a ``Seam``
  there, checked against the moto installed by tests/unit/test_moto_seams.py.
- ``lambdas.InProcessLambdas``: moto runs Lambda in Docker; here the handler named by the
  function's Handler runs in this process, with the function's Environment
  (``lambdas.FUNCTION_OVERRIDES`` on top) and its own service name (``lambdas.bind_service``).
- ``tasks.InProcessTasks``: moto's ECS starts no container; here a Fargate task of the
  training container runs the image's entrypoint in a thread, reports its exit as ECS does, and
  a ``runTask.sync`` state fails with ``States.TaskFailed`` on a non-zero exit.
- ``cloud.stack_resources``: moto lists a resource whose ``Condition`` is false as an empty entry.

For ``mlstack local up``, ``endpoint.LocalMotoServer`` runs moto's server without its permissive
CORS, refusing browser requests and oversized bodies; the local API caps bodies too, and
``lambdas.InProcessLambdas`` runs only the project's own handlers. ``faults.FaultPlan`` injects
Lambda and AWS faults into chosen invocations (docs/reliability.md).

docs/local-cloud.md lists what comes from the translated stack, what is adapted, and what local
runs therefore do not prove.
"""

from mlstack.localcloud.cloud import (
    REGION,
    STACK_NAME,
    LocalCloud,
    deploy,
    quiet_local_logs,
    stack_resources,
)
from mlstack.localcloud.lambdas import FUNCTION_OVERRIDES

__all__ = [
    "FUNCTION_OVERRIDES",
    "REGION",
    "STACK_NAME",
    "LocalCloud",
    "deploy",
    "quiet_local_logs",
    "stack_resources",
]
