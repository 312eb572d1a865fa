"""The local cloud: template.yaml deployed into moto, with Lambda handlers run in-process.

The same template, state-machine definition and handler code as on AWS. The template is translated
by aws-sam-translator (the transform CloudFormation runs; ``mlstack.sam``) and created as a stack
in moto's CloudFormation. Only what moto lacks is adapted, each in one named function:

- ``packaging.package_code``: CodeUri/ContentUri/DefinitionUri are local paths, as before
  ``sam package``; code is zipped into an artifacts bucket and the definition is inlined.
- ``adaptations.substitute_definitions``: moto ignores ``DefinitionSubstitutions``; they become
  an ``Fn::Sub``.
- ``adaptations.serve_api_locally``: moto's RestApi cannot be deployed from SAM's OpenAPI body;
  the API is served by ``api.LocalApi`` and ``ApiUrl`` points there.
- ``lambdas.InProcessLambdas``: moto runs Lambda in Docker; here the handler named by the
  function's Handler runs in this process, with the function's Environment
  (``lambdas.FUNCTION_OVERRIDES`` on top) and its own service name (``lambdas.bind_service``).
- ``adaptations.deliver_rule_targets``: moto's EventBridge does not deliver to Lambda targets, and
  takes a schedule rule (no event pattern) as matching every event. A failed delivery is retried,
  then dead-lettered, as EventBridge does.
- ``adaptations.take_item_batchers`` / ``batched_map_items``: moto's parser refuses a Distributed
  Map's ItemBatcher; it is taken out of the definitions moto gets and applied at run time.
- ``adaptations.json_state_copies``: moto's interpreter deep-copies each state's data with
  ``copy.deepcopy``; here the same JSON is copied through orjson (``json_copy``), still deeply.
- ``adaptations.shared_interpreter_clients``: moto's interpreter makes a boto3 client for every
  Lambda task; here one per region and service.
- ``adaptations.execution_status_events``: moto's Step Functions publishes no execution status
  change events; one is put on the bus when an execution ends.
- ``adaptations.apply_bucket_configuration``: moto's CloudFormation does not apply a bucket's
  versioning or NotificationConfiguration, so both are applied after the stack is created.
- ``adaptations.state_machines_in_executing_backend``: moto's CloudFormation puts state machines
  where the interpreter does not look.
- ``adaptations.resource_types_moto_lacks``: moto's CloudFormation has no
  ``AWS::S3::BucketPolicy``, ``AWS::SQS::QueuePolicy``, ``AWS::ApiGateway::Account``,
  ``AWS::SNS::Subscription`` or
  ``AWS::CloudWatch::Alarm``. The subscription is made through moto's SNS and each alarm through
  moto's CloudWatch (``put_metric_alarm``); the two policies become stack resources whose
  documents are not applied, because moto evaluates a bucket policy's Deny without its Condition,
  so the TLS-only deny would refuse every request.
- ``cloud.stack_resources``: moto lists a resource whose ``Condition`` is false as an empty entry.
- ``adaptations.map_result_files``: moto's Distributed Map ResultWriter writes an empty manifest;
  the children's outputs are written to a result file it lists, as on AWS.
- ``adaptations.atomic_item_writes``: DynamoDB applies each conditional write atomically; moto's
  in-process table does not, and Map iterations and queued runs here are threads of one process,
  so item writes are serialised (the run lock and version counter rely on that atomicity).

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
