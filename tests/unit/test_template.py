"""template.yaml as CloudFormation sees it: translated by aws-sam-translator, with the real ASL.

The checks live in ``mlstack.checks.template`` and return problems. The real template must have
none; each mutation test changes a copy of the template or the ASL (in tmp_path) in one way a
deploy could break, and the matching check must report it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.checks.template.asl import check_substitutions, check_transitions, state_machine_needs
from mlstack.checks.template.bucket_policy import check_configuration_denied, check_protected_writes
from mlstack.checks.template.code_calls import actions_in_code, registry_actions
from mlstack.checks.template.iam import (
    Need,
    allows,
    check_grants_are_needed,
    check_permissions,
    check_wildcards,
    role_of,
    role_statements,
)
from mlstack.checks.template.translated import Resolver, translate_offline
from mlstack.sam import load_template
from mlstack_core.idempotency import TABLE_ACTIONS
from mlstack_core.storage_keys import VERSION_FILES, version_file_key, version_model_key
from tests.helpers.template import mutate, real

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_SOURCE = ROOT / "layers/core/mlstack_core/registry.py"

# What each function touches, and where: the exact grants its role must make. Resources are Fn::Sub
# text over the template, with IAM's "*". The actions are checked against the function's code both
# ways (test_needs_cover_what_the_code_calls, test_every_need_is_called_by_the_code), the resources
# against the translated roles both ways (test_every_role_allows_what_its_code_needs,
# test_every_grant_is_needed).
DATASETS = "${DataBucket.Arn}/datasets/*"
RUNS = "${ModelBucket.Arn}/runs/*"
MODELS = "${ModelBucket.Arn}/models/*"
# What the readers of models/ read there, each the one file it needs of a version: the artifact
# (Evaluate's production, Predict, Score) and the Monitor's baseline and holdout answers. The keys
# are storage_keys' (test_each_narrow_read_covers_the_key_the_code_reads_and_no_other_file).
ARTIFACTS = "${ModelBucket.Arn}/models/*/model.onnx"
VERSION_BASELINES = "${ModelBucket.Arn}/models/*/baseline.json"
VERSION_BACKGROUNDS = "${ModelBucket.Arn}/models/*/background.json"
VERSION_PREDICTIONS = "${ModelBucket.Arn}/models/*/holdout_predictions.npz"
MONITORING = "${ModelBucket.Arn}/monitoring/*"
BATCH = "${DataBucket.Arn}/batch/*"
BATCH_RUNS = "${DataBucket.Arn}/batch-runs/*"
# Preprocess and Train, as functions and as the training image's tasks.
PREPROCESS_NEEDS = [
    Need("s3:GetObject", DATASETS, "the spec"),
    Need("s3:GetObjectVersion", DATASETS, "the uploaded version of the table"),
    Need(
        "s3:ListBucket",
        "${DataBucket.Arn}",
        "without it a missing spec.json is AccessDenied, not NoSuchKey",
    ),
    Need("s3:PutObject", RUNS, "splits, schema, feature baseline (a task: the run, error.json)"),
    Need("dynamodb:Query", "${RegistryTable.Arn}", "schema of the last version"),
    Need(
        "dynamodb:GetItem",
        "${RegistryTable.Arn}",
        "production's columns, kept in the split files for the gate",
    ),
]
IMPORTS = "${DataBucket.Arn}/imports/*"
IMPORT_ROWS = "${ModelBucket.Arn}/runs/*/import/*"
# PrepareImport: the function only (an import never trains on Fargate).
PREPARE_IMPORT_NEEDS = [
    Need("s3:GetObject", IMPORTS, "an import's holdout"),
    Need("s3:GetObjectVersion", IMPORTS, "an import's holdout, by version"),
    Need("s3:GetObject", IMPORT_ROWS, "the holdout joined to the training sample"),
    Need("s3:GetObjectVersion", IMPORT_ROWS, "the joined rows, by version"),
]
TRAIN_NEEDS = [
    Need("s3:GetObject", RUNS, "the splits (a task: the prepared run)"),
    Need(
        "s3:PutObject",
        "${ModelBucket.Arn}/runs/*/candidates/*",
        "one candidate's files (a task: its error.json)",
    ),
]
NEEDS: dict[str, list[Need]] = {
    "TriggerFunction": [
        Need("states:StartExecution", "${TrainingStateMachine}", "one run per upload"),
        Need("states:StartExecution", "${ScoringStateMachine}", "one job per batch file"),
        Need(
            "sqs:SendMessage",
            "${TriggerDeadLetterQueue.Arn}",
            "Lambda sends the events it could not deliver with the function's role",
        ),
        Need("sns:Publish", "${AlertsTopic}", "an upload above MaxUploadMiB is refused"),
        Need("kms:GenerateDataKey", "${AlertsKey.Arn}", "the alerts topic is encrypted"),
        Need("kms:Decrypt", "${AlertsKey.Arn}", "the alerts topic is encrypted"),
    ],
    "PreprocessFunction": [*PREPROCESS_NEEDS, *PREPARE_IMPORT_NEEDS],
    "TrainFunction": TRAIN_NEEDS,
    "AdmitFunction": [
        Need("s3:GetObject", IMPORTS, "the import's files"),
        Need("s3:GetObjectVersion", IMPORTS, "the manifest, by version"),
        Need("s3:GetObject", DATASETS, "the model's stored spec"),
        Need("s3:GetObjectVersion", DATASETS, "granted with the spec's read"),
        Need(
            "s3:ListBucket",
            "${DataBucket.Arn}",
            "without it a missing spec.json is AccessDenied, not NoSuchKey",
        ),
        Need("s3:PutObject", "${ModelBucket.Arn}/runs/*/candidates/*", "the candidate's files"),
        Need("s3:PutObject", IMPORT_ROWS, "the holdout joined to the training sample"),
    ],
    "TaskResultFunction": [
        Need("s3:GetObject", RUNS, "the prepared run, a candidate's result, a task's error.json"),
    ],
    # The training tasks on Fargate run the functions' code (their task roles, TaskRoleArn), and
    # store the prepared run, a candidate's result or a named error where the functions do.
    "PreprocessTaskDefinition": PREPROCESS_NEEDS,
    "TrainTaskDefinition": TRAIN_NEEDS,
    "EvaluateFunction": [
        Need("s3:GetObject", RUNS, "splits, candidate results"),
        Need("s3:GetObjectVersion", RUNS, "each candidate's export, by version"),
        Need("s3:GetObject", ARTIFACTS, "production's artifact when it has no recorded version"),
        Need("s3:GetObjectVersion", ARTIFACTS, "production's artifact, by version"),
        Need("s3:PutObject", RUNS, "evaluation report, holdout outputs, drift baseline"),
        Need("s3:GetObject", "${ModelBucket.Arn}/map-runs/*", "Distributed Map outputs"),
        Need("dynamodb:GetItem", "${RegistryTable.Arn}", "the production alias and version"),
    ],
    "RegisterFunction": [
        Need("s3:GetObject", RUNS, "the run's reports"),
        Need("s3:GetObjectVersion", RUNS, "exactly the evaluated artifact"),
        Need("s3:PutObject", MODELS, "the version's artifact and files"),
        Need("s3:GetObject", MODELS, "the model card reads the files beside the version"),
        Need("dynamodb:GetItem", "${RegistryTable.Arn}"),
        Need("dynamodb:PutItem", "${RegistryTable.Arn}"),
        Need("dynamodb:UpdateItem", "${RegistryTable.Arn}", "version counter, alias move"),
        Need("dynamodb:Query", "${RegistryTable.Arn}", "rejections in a row"),
        Need("dynamodb:GetItem", "${ApprovalAnswersTable.Arn}", "the answer as it was recorded"),
        *[
            Need(action, "${IdempotencyTable.Arn}", "Powertools Idempotency records")
            for action in sorted(TABLE_ACTIONS)
        ],
    ],
    "ApprovalFunction": [
        Need("dynamodb:PutItem", "${ApprovalsTable.Arn}", "hold a token; record an upload"),
        Need("dynamodb:GetItem", "${ApprovalsTable.Arn}", "who uploaded this version"),
        Need("dynamodb:DeleteItem", "${ApprovalsTable.Arn}", "take the token, once"),
        Need("dynamodb:PutItem", "${ApprovalAnswersTable.Arn}", "the verified answer"),
        Need("dynamodb:GetItem", "${RegistryTable.Arn}", "is the version awaiting approval"),
        Need(
            "states:SendTaskSuccess",
            "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
            "${TrainingStateMachine.Name}",
            "resume the paused run",
        ),
    ],
    "RunLockFunction": [
        Need("dynamodb:GetItem", "${RunLockTable.Arn}", "who holds the lock"),
        Need("dynamodb:PutItem", "${RunLockTable.Arn}", "conditional lock write"),
        Need("dynamodb:UpdateItem", "${RunLockTable.Arn}", "renew the lease"),
        Need("dynamodb:DeleteItem", "${RunLockTable.Arn}", "release"),
        Need("sns:Publish", "${AlertsTopic}", "a run that ended without its own cleanup"),
        Need("kms:GenerateDataKey", "${AlertsKey.Arn}", "the alerts topic is encrypted"),
        Need("kms:Decrypt", "${AlertsKey.Arn}", "the alerts topic is encrypted"),
    ],
    "ScoreFunction": [
        Need("s3:GetObject", ARTIFACTS, "the version's artifact"),
        Need("s3:GetObjectVersion", ARTIFACTS, "the version's artifact, by version"),
        Need("s3:GetObject", VERSION_BACKGROUNDS, "the version's background rows (--explain)"),
        Need("s3:GetObject", BATCH, "the file's header, the batches' refused rows"),
        Need("s3:GetObjectVersion", BATCH, "the uploaded version of the file"),
        Need("s3:GetObject", BATCH_RUNS, "the Distributed Map's results"),
        Need("s3:GetObjectVersion", BATCH_RUNS, "(granted with GetObject on the same prefixes)"),
        Need("s3:PutObject", BATCH, "parts, refused rows, errors.csv, manifest.json"),
        Need("dynamodb:GetItem", "${RegistryTable.Arn}", "the version"),
        Need("dynamodb:Query", "${RegistryTable.Arn}", "the aliases"),
    ],
    "PredictFunction": [
        Need("s3:GetObjectVersion", ARTIFACTS, "the registered artifact, by version"),
        Need("s3:GetObject", ARTIFACTS, "an artifact registered without a version id"),
        Need("s3:GetObject", VERSION_BACKGROUNDS, "the version's background rows (explain)"),
        Need("dynamodb:GetItem", "${RegistryTable.Arn}"),
        Need("dynamodb:Query", "${RegistryTable.Arn}", "GET /models, versions"),
        Need(
            "s3:PutObject",
            "${ModelBucket.Arn}/monitoring/*/summaries/*",
            "drift summaries (mlstack_core.drift.DriftRecorder)",
        ),
        Need(
            "s3:PutObject",
            "${ModelBucket.Arn}/captures/*",
            "ground-truth captures (mlstack_core.capture.CaptureRecorder)",
        ),
    ],
    "MonitorFunction": [
        Need("dynamodb:Query", "${RegistryTable.Arn}", "models"),
        Need("dynamodb:GetItem", "${RegistryTable.Arn}", "production alias and version"),
        Need("s3:ListBucket", "${ModelBucket.Arn}", "summaries of the window"),
        Need("s3:GetObject", MONITORING, "summaries"),
        Need("s3:GetObject", "${ModelBucket.Arn}/captures/*", "captured requests and answers"),
        Need("s3:GetObject", VERSION_BASELINES, "the version's drift baseline"),
        Need("s3:GetObject", VERSION_PREDICTIONS, "the version's holdout answers (quality)"),
        Need("s3:PutObject", MONITORING, "reports and latest.json"),
        Need("s3:ListBucketVersions", "${DataBucket.Arn}", "newest dataset to retrain on"),
        Need("s3:ListBucket", "${DataBucket.Arn}", "feedback files"),
        Need("s3:GetObject", "${DataBucket.Arn}/feedback/*", "labels"),
        Need("s3:GetObjectVersion", "${DataBucket.Arn}/feedback/*", "(granted with GetObject)"),
        Need("s3:GetObject", "${DataBucket.Arn}/datasets/*", "the newest dataset; is it done"),
        Need("s3:GetObjectVersion", "${DataBucket.Arn}/datasets/*", "the newest, by version"),
        Need("s3:PutObject", "${DataBucket.Arn}/datasets/*", "dataset plus labelled rows"),
        Need("states:StartExecution", "${TrainingStateMachine}", "retraining on drift"),
        Need(
            "states:DescribeExecution",
            "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:"
            "${TrainingStateMachine.Name}:*",
            "is this retraining already started",
        ),
        Need("sns:Publish", "${AlertsTopic}", "drift alert"),
        Need("kms:GenerateDataKey", "${AlertsKey.Arn}", "the alerts topic is encrypted"),
        Need("kms:Decrypt", "${AlertsKey.Arn}", "the alerts topic is encrypted"),
    ],
}
# Needs with no call in the function's code, each for the reason given in its Need.
NEEDED_WITHOUT_A_CALL = {
    ("TriggerFunction", "sqs:SendMessage"),
    ("TriggerFunction", "kms:GenerateDataKey"),
    ("TriggerFunction", "kms:Decrypt"),
    ("PreprocessFunction", "s3:ListBucket"),
    ("PreprocessTaskDefinition", "s3:ListBucket"),
    ("AdmitFunction", "s3:ListBucket"),
    ("MonitorFunction", "kms:GenerateDataKey"),
    ("MonitorFunction", "kms:Decrypt"),
    ("RunLockFunction", "kms:GenerateDataKey"),
    ("RunLockFunction", "kms:Decrypt"),
}
# What the ASL cannot say by itself: the Distributed Map reads its item list from the bucket named
# in the run ($.run.splits.bucket), which Preprocess sets to the model bucket.
STATE_MACHINE_EXTRA = [
    Need("s3:GetObject", RUNS, "Distributed Map items (candidates.json)"),
    # sns:Publish to the alerts topic (derived from the ASL) needs its customer managed key.
    Need("kms:GenerateDataKey", "${AlertsKey.Arn}", "encrypted alerts topic"),
    Need("kms:Decrypt", "${AlertsKey.Arn}", "encrypted alerts topic"),
]
# The scoring machine's ItemReader reads the file named in the job ($.job.rows: the batch file,
# or its comma-separated copy beside the job's output), under batch/ in the data bucket, by the
# VersionId the job was resolved with.
SCORING_MACHINE_EXTRA = [
    Need("s3:GetObject", BATCH, "Distributed Map items (the batch file, ItemReader)"),
    Need("s3:GetObjectVersion", BATCH, "the batch file's checked version (ItemReader VersionId)"),
    Need("kms:GenerateDataKey", "${AlertsKey.Arn}", "encrypted alerts topic"),
    Need("kms:Decrypt", "${AlertsKey.Arn}", "encrypted alerts topic"),
]
EXPECTED_UNRESOLVED = ["TrainCandidatesDistributed: ItemReader"]
# What ECS itself does with the training tasks' execution role: no code of the stack calls it.
EXECUTION_ROLE_NEEDS = [
    Need("ecr:GetAuthorizationToken", "*", "the registry login; no resource-level permissions"),
    *[
        Need(action, "${TrainingImageRepository.Arn}", "pull the training image")
        for action in (
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
        )
    ],
    Need("logs:CreateLogStream", "${TrainingTaskLogGroup.Arn}", "the container's log (awslogs)"),
    Need("logs:PutLogEvents", "${TrainingTaskLogGroup.Arn}", "the container's log (awslogs)"),
]
TASK_DEFINITIONS = ("PreprocessTaskDefinition", "TrainTaskDefinition")
# What the state machine needs to run the training tasks (ecs:runTask.sync), derived from the ASL:
# each task definition, the cluster's tasks, Step Functions' managed rule, and the tasks' roles.
ECS_TASK_EVENTS_RULE = (
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
    "StepFunctionsGetEventsForECSTaskRule"
)
CLUSTER_TASKS = (
    "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${TrainingCluster}/*"
)
TRAINING_TASK_NEEDS = {
    ("ecs:RunTask", "${PreprocessTaskDefinition}"),
    ("ecs:RunTask", "${TrainTaskDefinition}"),
    ("ecs:StopTask", CLUSTER_TASKS),
    ("ecs:DescribeTasks", CLUSTER_TASKS),
    ("events:PutTargets", ECS_TASK_EVENTS_RULE),
    ("events:PutRule", ECS_TASK_EVENTS_RULE),
    ("events:DescribeRule", ECS_TASK_EVENTS_RULE),
    ("iam:PassRole", "${PreprocessTaskRole.Arn}"),
    ("iam:PassRole", "${TrainTaskRole.Arn}"),
    ("iam:PassRole", "${TrainingTaskExecutionRole.Arn}"),
}


def all_needs(translated: dict[str, Any]) -> dict[str, list[Need]]:
    derived, _ = state_machine_needs(translated, "TrainingStateMachine")
    scoring, _ = state_machine_needs(translated, "ScoringStateMachine")
    return {
        **NEEDS,
        "TrainingTaskExecutionRole": EXECUTION_ROLE_NEEDS,
        "TrainingStateMachine": derived + STATE_MACHINE_EXTRA,
        "ScoringStateMachine": scoring + SCORING_MACHINE_EXTRA,
    }


def _training_task_needs(needs: list[Need]) -> set[tuple[str, str]]:
    return {
        (n.action, n.resource) for n in needs if n.action.split(":")[0] in ("ecs", "events", "iam")
    }


# ------------------------------------------------------------------------------ the real template
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used() -> None:
    assert check_substitutions(real()) == []


def test_every_transition_target_exists_and_every_state_is_reachable() -> None:
    assert check_transitions(real()) == []


def test_every_role_allows_what_its_code_needs() -> None:
    assert check_permissions(real(), all_needs(real())) == []


def test_every_function_and_task_has_its_needs_listed() -> None:
    code_runners = {
        k
        for k, v in real()["Resources"].items()
        if v["Type"] in ("AWS::Lambda::Function", "AWS::ECS::TaskDefinition")
    }
    assert code_runners == set(NEEDS)
    assert set(TASK_DEFINITIONS) <= code_runners


def test_every_grant_is_needed() -> None:
    """No role grants an action its code does not call, or on a wider resource than it uses."""
    assert check_grants_are_needed(real(), all_needs(real())) == []


def test_no_role_allows_everything_or_everywhere() -> None:
    assert check_wildcards(real()) == []


def test_state_machine_needs_come_from_the_asl() -> None:
    needs, unresolved = state_machine_needs(real(), "TrainingStateMachine")
    invoked = {n.resource for n in needs if n.action == "lambda:InvokeFunction"}
    assert invoked == {
        "${PreprocessFunction.Arn}",
        "${TrainFunction.Arn}",
        "${AdmitFunction.Arn}",
        "${EvaluateFunction.Arn}",
        "${RegisterFunction.Arn}",
        "${RunLockFunction.Arn}",
        "${ApprovalFunction.Arn}",
        "${TaskResultFunction.Arn}",
    }
    assert {n.resource for n in needs if n.action == "sns:Publish"} == {"${AlertsTopic}"}
    assert _training_task_needs(needs) == TRAINING_TASK_NEEDS
    # A new run-time-chosen resource must be reviewed and added to STATE_MACHINE_EXTRA.
    assert [u.split(" {")[0] for u in unresolved] == EXPECTED_UNRESOLVED


# Shared modules that call AWS, followed into the functions that import them.
INTEGRITY_SOURCE = ROOT / "layers/core/mlstack_core/integrity.py"
AWS_CALLING_CORE = {"registry.py", "integrity.py"}


# The code a training task runs: the function's package it shares, and the image's entry point.
TASK_CODE = {
    "PreprocessTaskDefinition": "functions/preprocess",
    "TrainTaskDefinition": "functions/train",
}
CONTAINER_CODE = [d for d in (ROOT / "containers/training",) if d.is_dir()]


def _code_dirs(runner: str) -> list[Path]:
    if runner in TASK_CODE:
        return [ROOT / TASK_CODE[runner], *CONTAINER_CODE]
    properties = load_template(ROOT / "template.yaml")["Resources"][runner]["Properties"]
    return [ROOT / properties["CodeUri"]]


def _code_actions(function: str) -> set[str]:
    files = sorted(f for code_dir in _code_dirs(function) for f in code_dir.rglob("*.py"))
    if any("mlstack_core.integrity" in f.read_text() for f in files):
        files.append(INTEGRITY_SOURCE)
    called = actions_in_code(files, registry_actions(REGISTRY_SOURCE))
    if any("mlstack_core.idempotency" in f.read_text() for f in files):
        called |= TABLE_ACTIONS  # Powertools' calls on the idempotency table
    return called


@pytest.mark.parametrize("function", sorted(NEEDS))
def test_needs_cover_what_the_code_calls(function: str) -> None:
    """Every AWS call in the function's code (boto3 operations, and the DynamoDB calls behind each
    Registry method it uses) is listed in NEEDS, so NEEDS cannot fall behind the code."""
    called = _code_actions(function)
    listed = {need.action for need in NEEDS[function]}
    assert called, f"no AWS calls found in {function}'s code: the scan is broken"
    assert called <= listed, f"{function} calls {sorted(called - listed)}, not in NEEDS"


@pytest.mark.parametrize("function", sorted(NEEDS))
def test_every_need_is_called_by_the_code(function: str) -> None:
    """The other way round: NEEDS lists no action the code never calls, except the few whose
    caller is AWS itself (NEEDED_WITHOUT_A_CALL), so no role keeps a grant the code dropped."""
    called = _code_actions(function)
    listed = {need.action for need in NEEDS[function]}
    unexplained = {a for a in listed - called if (function, a) not in NEEDED_WITHOUT_A_CALL}
    assert not unexplained, f"{function} is granted {sorted(unexplained)} but never calls it"


def test_only_the_registry_calls_aws_among_shared_modules() -> None:
    """The scan above follows mlstack_core through Registry and the integrity checks; no other
    shared module may call AWS, or the scan would miss it."""
    core = ROOT / "layers/core/mlstack_core"
    others = [p for p in sorted(core.rglob("*.py")) if p.name not in AWS_CALLING_CORE]
    assert actions_in_code(others, {}) == set()


def test_send_task_success_is_granted_exactly_where_code_uses_it() -> None:
    """Approvals answer the waiting execution with SendTaskSuccess from the user's CLI
    (mlstack/lifecycle.py), with the user's credentials: no function calls it, so no role has it."""
    translated = real()
    resolver = Resolver(translated)
    machine = resolver.ref("TrainingStateMachine")
    for function in NEEDS:
        role = role_of(translated, function)
        assert role is not None
        statements, _ = role_statements(translated, role, resolver)
        used = "states:SendTaskSuccess" in _code_actions(function)
        assert allows(statements, "states:SendTaskSuccess", machine) == used, function


APPROVAL_ROUTES = {
    "/models/{model}/versions/{version}/approve",
    "/models/{model}/versions/{version}/reject",
}


def test_api_auth_is_a_parameter_defaulting_to_iam() -> None:
    """ApiAuth=NONE opens the model routes; approving and rejecting stay IAM-authorised, since
    the caller's IAM identity is what the registry records as the person who decided."""

    def securities(translated: dict[str, Any]) -> dict[str, Any]:
        body = translated["Resources"]["Api"]["Properties"]["Body"]
        return {
            path: op.get("security")
            for path, operations in body["paths"].items()
            for op in operations.values()
        }

    iam: list[dict[str, list[str]]] = [{"AWS_IAM": []}]
    assert set(map(json.dumps, securities(real()).values())) == {json.dumps(iam)}
    public = securities(translate_offline(ROOT, {"ApiAuth": "NONE"}))
    assert {path for path, security in public.items() if security == iam} == APPROVAL_ROUTES
    assert {json.dumps(s) for p, s in public.items() if p not in APPROVAL_ROUTES} == {"null"}


def test_a_public_approval_route_is_caught(tmp_path: Path) -> None:
    def open_up(template: dict[str, Any]) -> None:
        events = template["Resources"]["ApprovalFunction"]["Properties"]["Events"]
        del events["Approve"]["Properties"]["Auth"]

    translated = mutate(tmp_path, template=open_up)
    body = translated["Resources"]["Api"]["Properties"]["Body"]
    # With ApiAuth's default the route would still be signed; the template must not rely on it.
    approve = body["paths"]["/models/{model}/versions/{version}/approve"]["post"]
    assert approve.get("security") == [{"AWS_IAM": []}]
    public = translate_offline(tmp_path, {"ApiAuth": "NONE"})
    opened = public["Resources"]["Api"]["Properties"]["Body"]["paths"]
    assert opened["/models/{model}/versions/{version}/approve"]["post"].get("security") is None


# ------------------------------------------------------------------------------ safe defaults
def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in real()["Resources"].items() if v["Type"] == kind}


def test_buckets_are_encrypted_versioned_private_and_tls_only() -> None:
    buckets = _resources("AWS::S3::Bucket")
    # The trail's log bucket exists only with ApproverMustDiffer, and its objects are not versions.
    assert buckets.pop("UploadTrailBucket")["Condition"] == "ApproverMustDifferFromUploader"
    assert set(buckets) == {"DataBucket", "ModelBucket"}
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
        for p in _resources("AWS::S3::BucketPolicy").values()
    }
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}, name
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}, name
        denies = [
            s
            for s in policies[name]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{name} has no TLS-only policy"
        assert denies[0]["Action"] == "s3:*"
        assert denies[0]["Principal"] == "*"


def test_every_function_logs_to_a_group_with_retention() -> None:
    groups = _resources("AWS::Logs::LogGroup")
    functions = _resources("AWS::Lambda::Function")
    used = set()
    for name, function in functions.items():
        group = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert group in groups, f"{name} has no LoggingConfig.LogGroup of the stack"
        used.add(group)
        assert groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    access = groups.pop("ApiAccessLogGroup")  # the API stage's, not a function's
    assert access["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    tasks = groups.pop("TrainingTaskLogGroup")  # the training tasks' containers'
    assert tasks["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for name in TASK_DEFINITIONS:
        (container,) = real()["Resources"][name]["Properties"]["ContainerDefinitions"]
        log = container["LogConfiguration"]
        assert log["LogDriver"] == "awslogs", name
        assert log["Options"]["awslogs-group"] == {"Ref": "TrainingTaskLogGroup"}, name
    assert used == set(groups)


def test_the_api_stage_writes_an_access_log_and_its_own_errors_say_nosniff() -> None:
    stage = real()["Resources"]["ApiStage"]["Properties"]
    assert stage["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    assert "$context.identity.userArn" in stage["AccessLogSetting"]["Format"]
    body = real()["Resources"]["Api"]["Properties"]["Body"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        headers = responses[kind]["responseParameters"]
        assert headers["gatewayresponse.header.X-Content-Type-Options"] == "'nosniff'"
        assert headers["gatewayresponse.header.Cache-Control"] == "'no-store'"


def test_tracing_is_on_everywhere() -> None:
    for name, function in _resources("AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
    for machine in _resources("AWS::StepFunctions::StateMachine").values():
        assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert real()["Resources"]["ApiStage"]["Properties"]["TracingEnabled"] is True


def test_the_async_trigger_has_dead_letters() -> None:
    translated = real()
    resources = translated["Resources"]
    queue = {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}
    # Events EventBridge could not deliver to the function...
    (target,) = resources["TriggerFunctionDatasetUploaded"]["Properties"]["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": queue}
    # ...which it may only send with the queue's permission, for this rule only...
    (policy,) = _resources("AWS::SQS::QueuePolicy").values()
    allow = next(
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    )
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["TriggerFunctionDatasetUploaded", "Arn"]
    }
    # ...and asynchronous invocations that still failed after Lambda's retries.
    trigger = resources["TriggerFunction"]["Properties"]
    assert trigger["DeadLetterConfig"] == {"TargetArn": queue}
    assert (
        check_permissions(
            translated,
            {"TriggerFunction": [Need("sqs:SendMessage", "${TriggerDeadLetterQueue.Arn}")]},
        )
        == []
    )


def test_api_is_throttled_by_parameters() -> None:
    (settings,) = real()["Resources"]["ApiStage"]["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}


def test_alert_email_subscription_is_optional() -> None:
    translated = real()
    (subscription,) = _resources("AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlertEmail"
    assert Resolver(translated).condition("HasAlertEmail") is False
    assert Resolver(translated, {"AlertEmail": "ops@example.com"}).condition("HasAlertEmail")


NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Events::Rule": "Name",
}


def test_no_name_collides_across_stacks_or_regions() -> None:
    """Every explicit name carries the stack name (names are per region, so a stack name is unique
    in each); everything else is named by CloudFormation."""
    translated = real()
    named = 0
    for logical_id, resource in translated["Resources"].items():
        key = NAME_PROPERTIES.get(resource["Type"], "")
        if key in resource.get("Properties", {}):
            named += 1
            value = json.dumps(resource["Properties"][key])
            assert "AWS::StackName" in value, f"{logical_id}.{key} = {value}"
    assert named >= 8  # the state machine and the log groups
    for name, function in _resources("AWS::Lambda::Function").items():
        namespace = function["Properties"]["Environment"]["Variables"]
        assert "AWS::StackName" in json.dumps(namespace["POWERTOOLS_METRICS_NAMESPACE"]), name


def test_parameters_have_safe_documented_defaults() -> None:
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    assert parameters["ApiAuth"]["Default"] == "AWS_IAM"
    assert parameters["AlertEmail"]["Default"] == ""
    for name in parameters:
        assert parameters[name].get("Description"), name


# ------------------------------------------------------------------------------ mutations
def test_removed_substitution_is_caught(tmp_path: Path) -> None:
    def drop(template: dict[str, Any]) -> None:
        del template["Resources"]["TrainingStateMachine"]["Properties"]["DefinitionSubstitutions"][
            "RunLockFunctionArn"
        ]

    problems = check_substitutions(mutate(tmp_path, template=drop))
    assert problems == [
        "TrainingStateMachine: ${RunLockFunctionArn} has no DefinitionSubstitutions entry"
    ]


def test_unused_substitution_is_caught(tmp_path: Path) -> None:
    def add(template: dict[str, Any]) -> None:
        substitutions = template["Resources"]["TrainingStateMachine"]["Properties"][
            "DefinitionSubstitutions"
        ]
        substitutions["DataBucketName"] = {"Ref": "DataBucket"}

    problems = check_substitutions(mutate(tmp_path, template=add))
    assert problems == ["TrainingStateMachine: DefinitionSubstitutions.DataBucketName is not used"]


def test_placeholder_without_substitution_in_the_asl_is_caught(tmp_path: Path) -> None:
    def rename(definition: dict[str, Any]) -> None:
        definition["States"]["Evaluate"]["Resource"] = "${ScoreFunctionArn}"

    problems = check_substitutions(mutate(tmp_path, asl=rename))
    assert "TrainingStateMachine: ${ScoreFunctionArn} has no DefinitionSubstitutions entry" in (
        problems
    )


def test_missing_next_is_caught(tmp_path: Path) -> None:
    def misspell(definition: dict[str, Any]) -> None:
        definition["States"]["Evaluate"]["Next"] = "Gat"

    problems = check_transitions(mutate(tmp_path, asl=misspell))
    assert "TrainingStateMachine (top level)Evaluate: Next 'Gat' is not a state in its scope" in (
        problems
    )


def test_missing_next_inside_a_map_item_processor_is_caught(tmp_path: Path) -> None:
    def wander(definition: dict[str, Any]) -> None:
        task = definition["States"]["TrainCandidates"]["ItemProcessor"]["States"]["TrainCandidate"]
        del task["End"]
        task["Next"] = "Evaluate"  # a state of the outer scope: not reachable from inside a Map

    problems = check_transitions(mutate(tmp_path, asl=wander))
    assert problems == [
        "TrainingStateMachine TrainCandidates.ItemProcessor/TrainCandidate: "
        "Next 'Evaluate' is not a state in its scope"
    ]


def test_missing_catch_and_default_targets_are_caught(tmp_path: Path) -> None:
    def break_targets(definition: dict[str, Any]) -> None:
        definition["States"]["Preprocess"]["Catch"][0]["Next"] = "NotifyFailures"
        definition["States"]["Gate"]["Default"] = "Reject"

    problems = check_transitions(mutate(tmp_path, asl=break_targets))
    assert (
        "TrainingStateMachine (top level)Preprocess: Catch[0].Next 'NotifyFailures' is not a "
        "state in its scope" in problems
    )
    assert (
        "TrainingStateMachine (top level)Gate: Default 'Reject' is not a state in its scope"
        in problems
    )


def test_policy_widened_to_every_action_is_caught(tmp_path: Path) -> None:
    def widen(template: dict[str, Any]) -> None:
        statements = template["Resources"]["RegisterFunction"]["Properties"]["Policies"][0][
            "Statement"
        ]
        (registry,) = [st for st in statements if "RegistryTable" in json.dumps(st["Resource"])]
        registry["Action"] = "dynamodb:*"

    translated = mutate(tmp_path, template=widen)
    assert check_wildcards(translated) == [
        "RegisterFunctionRole.RegisterFunctionRolePolicy0: allows every action (dynamodb:*)"
    ]
    assert check_permissions(translated, all_needs(translated)) == []  # wider still allows
    assert check_grants_are_needed(translated, all_needs(translated)) == [
        "RegisterFunction: RegisterFunctionRole.RegisterFunctionRolePolicy0 grants dynamodb:* on "
        "arn:aws:dynamodb:us-east-1:123456789012:table/mlstack-RegistryTable, which its code "
        "does not need"
    ]


def test_a_sam_policy_template_granting_bucket_configuration_is_caught(tmp_path: Path) -> None:
    """S3CrudPolicy on the model bucket would let code running in Preprocess expire every model
    version (s3:PutLifecycleConfiguration)."""

    def crud(template: dict[str, Any]) -> None:
        policies = template["Resources"]["PreprocessFunction"]["Properties"]["Policies"]
        policies.append({"S3CrudPolicy": {"BucketName": {"Ref": "ModelBucket"}}})

    translated = mutate(tmp_path, template=crud)
    problems = check_grants_are_needed(translated, all_needs(translated))
    granted = {p.split(" grants ")[1].split(" on ")[0] for p in problems}
    assert "s3:PutLifecycleConfiguration" in granted
    assert {"s3:DeleteObject", "s3:PutObject", "s3:GetBucketLocation"} <= granted
    assert check_permissions(translated, all_needs(translated)) == []  # nothing is missing


def test_a_write_widened_beyond_its_prefix_is_caught(tmp_path: Path) -> None:
    """Train writes under runs/*/candidates/; the same action on the whole bucket would let it
    write models/ and skip the gate."""

    def widen(template: dict[str, Any]) -> None:
        statements = template["Resources"]["TrainFunction"]["Properties"]["Policies"][0][
            "Statement"
        ]
        statements[-1]["Resource"] = {"Fn::Sub": "${ModelBucket.Arn}/*"}

    translated = mutate(tmp_path, template=widen)
    assert check_grants_are_needed(translated, all_needs(translated)) == [
        "TrainFunction: TrainFunctionRole.TrainFunctionRolePolicy0 grants s3:PutObject on "
        "arn:aws:s3:::mlstack-ModelBucket/*, which its code does not need"
    ]
    assert check_wildcards(translated) == []  # a bucket's objects look narrow to that check


# Who reads which file of a registered version, with the keys the code builds (storage_keys).
MODEL_FILE_READERS = {
    "EvaluateFunction": {"model.onnx"},
    "PredictFunction": {"model.onnx", VERSION_FILES["background"]},
    "ScoreFunction": {"model.onnx", VERSION_FILES["background"]},
    "MonitorFunction": {VERSION_FILES["baseline"], VERSION_FILES["predictions"]},
}


def test_each_narrow_read_covers_the_key_the_code_reads_and_no_other_file() -> None:
    """Under models/, each reader may read the one kind of file its code reads of a version, not
    the version's card, metadata, evaluation report or the other readers' files."""
    translated = real()
    resolver = Resolver(translated)
    every_file = {
        *VERSION_FILES.values(),
        "model.onnx",
        "metadata.json",
        "card.md",
        "card.html",
    }
    for function, reads in MODEL_FILE_READERS.items():
        role = role_of(translated, function)
        assert role is not None
        statements, _ = role_statements(translated, role, resolver)
        for name in sorted(every_file):
            key = version_file_key("penguins", 3, name)
            if name == "model.onnx":
                assert key == version_model_key("penguins", 3)
            arn = resolver.sub(f"${{ModelBucket.Arn}}/{key}")
            assert allows(statements, "s3:GetObject", arn) == (name in reads), (function, key)


def test_a_read_widened_to_every_file_of_models_is_caught(tmp_path: Path) -> None:
    """Predict reads a version's model.onnx; the whole of models/ would let code running in it
    read every version's evaluation, holdout answers and card."""

    def widen(template: dict[str, Any]) -> None:
        statements = template["Resources"]["PredictFunction"]["Properties"]["Policies"][0][
            "Statement"
        ]
        (read,) = [st for st in statements if "model.onnx" in json.dumps(st["Resource"])]
        read["Resource"] = {"Fn::Sub": "${ModelBucket.Arn}/models/*"}

    translated = mutate(tmp_path, template=widen)
    assert check_grants_are_needed(translated, all_needs(translated)) == [
        f"PredictFunction: PredictFunctionRole.PredictFunctionRolePolicy0 grants {action} on "
        "arn:aws:s3:::mlstack-ModelBucket/models/*, which its code does not need"
        for action in ("s3:GetObject", "s3:GetObjectVersion")
    ]
    assert check_permissions(translated, all_needs(translated)) == []  # wider still allows


def test_policy_widened_to_every_resource_is_caught(tmp_path: Path) -> None:
    def widen(template: dict[str, Any]) -> None:
        template["Resources"]["TrainFunction"]["Properties"]["Policies"] = [
            {
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"}
                ]
            }
        ]

    assert check_wildcards(mutate(tmp_path, template=widen)) == [
        "TrainFunctionRole.TrainFunctionRolePolicy0: s3:GetObject, s3:PutObject on *, "
        "where a narrower resource exists"
    ]


def test_policy_widened_to_every_table_is_caught(tmp_path: Path) -> None:
    def widen(template: dict[str, Any]) -> None:
        template["Resources"]["RunLockFunction"]["Properties"]["Policies"] = [
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
                        "Resource": {
                            "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:"
                            "${AWS::AccountId}:table/*"
                        },
                    }
                ]
            }
        ]

    problems = check_wildcards(mutate(tmp_path, template=widen))
    assert len(problems) == 1
    assert problems[0].endswith(":table/*, where a narrower resource exists")


def test_missing_permission_is_caught(tmp_path: Path) -> None:
    def narrow(template: dict[str, Any]) -> None:
        statements = template["Resources"]["TriggerFunction"]["Properties"]["Policies"][0][
            "Statement"
        ]
        statements[:] = [s for s in statements if s["Action"] != "states:StartExecution"]

    translated = mutate(tmp_path, template=narrow)
    assert check_permissions(translated, all_needs(translated)) == [
        "TriggerFunction: TriggerFunctionRole does not allow states:StartExecution on "
        "arn:aws:states:us-east-1:123456789012:stateMachine:mlstack-training (one run per upload)",
        "TriggerFunction: TriggerFunctionRole does not allow states:StartExecution on "
        "arn:aws:states:us-east-1:123456789012:stateMachine:mlstack-scoring (one job per batch "
        "file)",
    ]


def test_read_only_bucket_access_where_code_writes_is_caught(tmp_path: Path) -> None:
    def read_only(template: dict[str, Any]) -> None:
        statements = template["Resources"]["EvaluateFunction"]["Properties"]["Policies"][0][
            "Statement"
        ]
        statements[:] = [s for s in statements if s["Action"] != "s3:PutObject"]

    problems = check_permissions(mutate(tmp_path, template=read_only), NEEDS)
    assert problems == [
        "EvaluateFunction: EvaluateFunctionRole does not allow s3:PutObject on "
        "arn:aws:s3:::mlstack-ModelBucket/runs/* "
        "(evaluation report, holdout outputs, drift baseline)"
    ]


def test_state_machine_without_result_writer_permission_is_caught(tmp_path: Path) -> None:
    def drop(template: dict[str, Any]) -> None:
        policies = template["Resources"]["TrainingStateMachine"]["Properties"]["Policies"]
        statements = policies[-1]["Statement"]
        statements[:] = [s for s in statements if "map-runs" not in json.dumps(s)]

    translated = mutate(tmp_path, template=drop)
    problems = check_permissions(translated, all_needs(translated))
    assert {p.split(" on ")[0] for p in problems} == {
        f"TrainingStateMachine: TrainingStateMachineRole does not allow {action}"
        for action in (
            "s3:PutObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        )
    }


# ------------------------------------------------------------------------------ the model bucket
def _model_bucket_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = template["Resources"]["ModelBucketPolicy"]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    return statements


def test_only_register_writes_models_and_no_stack_role_configures_the_bucket() -> None:
    """And only the state machine writes map-runs/, whose outputs Evaluate trusts."""
    assert check_protected_writes(real()) == []
    assert check_configuration_denied(real()) == []


def test_a_bucket_policy_without_the_models_guard_is_caught(tmp_path: Path) -> None:
    def drop(template: dict[str, Any]) -> None:
        statements = _model_bucket_statements(template)
        statements[:] = [s for s in statements if s.get("Sid") != "OnlyRegisterWritesModels"]

    problems = check_protected_writes(mutate(tmp_path, template=drop))
    assert [p for p in problems if "models/" in p] == [
        f"ModelBucket's policy lets {role} write under models/"
        for role in (
            "AdmitFunctionRole",
            "ApprovalFunctionRole",
            "EvaluateFunctionRole",
            "MonitorFunctionRole",
            "PredictFunctionRole",
            "PreprocessFunctionRole",
            "PreprocessTaskRole",
            "RunLockFunctionRole",
            "ScoreFunctionRole",
            "ScoringStateMachineRole",
            "TaskResultFunctionRole",
            "TrainFunctionRole",
            "TrainTaskRole",
            "TrainingStateMachineRole",
            "TrainingTaskExecutionRole",
            "TriggerFunctionRole",
        )
    ]


def test_a_stack_role_missing_from_the_configuration_deny_is_caught(tmp_path: Path) -> None:
    """A new function's role must be added to the list, or it could expire every model."""

    def forget(template: dict[str, Any]) -> None:
        (statement,) = [
            s
            for s in _model_bucket_statements(template)
            if s.get("Sid") == "StackRolesNeverConfigureTheBucket"
        ]
        roles = statement["Condition"]["ArnEquals"]["aws:PrincipalArn"]
        roles[:] = [r for r in roles if "MonitorFunctionRole" not in json.dumps(r)]

    problems = check_configuration_denied(mutate(tmp_path, template=forget))
    assert problems
    assert {p.rsplit(" to ", 1)[1] for p in problems} == {"MonitorFunctionRole"}
    assert any("s3:PutLifecycleConfiguration" in p for p in problems)


def test_object_lock_is_a_parameter_off_by_default() -> None:
    bucket = real()["Resources"]["ModelBucket"]["Properties"]
    condition, when_on, when_off = bucket["ObjectLockConfiguration"]["Fn::If"]
    assert when_off == {"Ref": "AWS::NoValue"}
    assert bucket["ObjectLockEnabled"] == {"Fn::If": [condition, True, {"Ref": "AWS::NoValue"}]}
    assert Resolver(real()).condition(condition) is False
    locked = Resolver(real(), {"ModelObjectLockDays": "30"})
    assert locked.condition(condition) is True
    assert locked.value(when_on) == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": "30"}},
    }


def test_only_the_approval_function_reads_the_task_tokens() -> None:
    """A held task token resumes a run: no other role of the stack may read the approvals table
    (the prediction function reads the registry, which therefore never holds a token)."""
    translated = real()
    resolver = Resolver(translated)
    table = resolver.attribute("ApprovalsTable", "Arn")
    readers = set()
    for role in (k for k, v in translated["Resources"].items() if v["Type"] == "AWS::IAM::Role"):
        statements, _ = role_statements(translated, role, resolver)
        for action in (
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "dynamodb:DeleteItem",
        ):
            if allows(statements, action, table):
                readers.add(role)
    assert readers == {"ApprovalFunctionRole"}


def test_only_the_approval_function_writes_the_answers_register_acts_on() -> None:
    """Register promotes on the answer the approval function recorded, not on the words a run
    was resumed with: no other role of the stack may write that record, and Register only reads
    it."""
    translated = real()
    resolver = Resolver(translated)
    table = resolver.attribute("ApprovalAnswersTable", "Arn")
    writers, readers = set(), set()
    for role in (k for k, v in translated["Resources"].items() if v["Type"] == "AWS::IAM::Role"):
        statements, _ = role_statements(translated, role, resolver)
        for action in (
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:PartiQLInsert",
            "dynamodb:PartiQLUpdate",
            "dynamodb:PartiQLDelete",
        ):
            if allows(statements, action, table):
                writers.add(role)
        if allows(statements, "dynamodb:GetItem", table):
            readers.add(role)
    assert writers == {"ApprovalFunctionRole"}
    assert readers == {"RegisterFunctionRole"}


def test_the_run_lock_role_writes_its_lock_table_and_nothing_of_the_registry() -> None:
    """The role that takes and frees locks cannot put, change or delete a registry item (a
    version, an alias, the history); and no other role writes the lock table."""
    translated = real()
    resolver = Resolver(translated)
    registry = resolver.attribute("RegistryTable", "Arn")
    locks = resolver.attribute("RunLockTable", "Arn")
    writes = (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    )
    statements, _ = role_statements(translated, "RunLockFunctionRole", resolver)
    assert [a for a in writes if allows(statements, a, registry)] == []
    assert allows(statements, "dynamodb:DeleteItem", locks)
    lock_writers = set()
    for role in (k for k, v in translated["Resources"].items() if v["Type"] == "AWS::IAM::Role"):
        statements, _ = role_statements(translated, role, resolver)
        if any(allows(statements, action, locks) for action in writes):
            lock_writers.add(role)
    assert lock_writers == {"RunLockFunctionRole"}


# ------------------------------------------------------------------------------ training tasks
def test_training_task_states_need_exactly_what_the_state_machine_role_grants() -> None:
    """Derived from the task states themselves: ecs:RunTask on their task definitions, the
    cluster's tasks, Step Functions' managed rule, iam:PassRole on each task definition's roles.
    The role grants all of it and nothing more."""
    translated = real()
    assert check_substitutions(translated) == []
    needs, unresolved = state_machine_needs(translated, "TrainingStateMachine")
    assert _training_task_needs(needs) == TRAINING_TASK_NEEDS
    assert "${TaskResultFunction.Arn}" in {
        n.resource for n in needs if n.action == "lambda:InvokeFunction"
    }
    assert [u.split(" {")[0] for u in unresolved] == EXPECTED_UNRESOLVED
    machine = {"TrainingStateMachine": all_needs(translated)["TrainingStateMachine"]}
    assert check_permissions(translated, machine) == []
    assert check_grants_are_needed(translated, machine) == []


def test_a_task_definition_chosen_at_run_time_is_unresolved(tmp_path: Path) -> None:
    def choose_at_run_time(definition: dict[str, Any]) -> None:
        parameters = definition["States"]["PreprocessTask"]["Parameters"]
        parameters["TaskDefinition.$"] = "$.compute.task_definition"
        del parameters["TaskDefinition"]

    _, unresolved = state_machine_needs(
        mutate(tmp_path, asl=choose_at_run_time), "TrainingStateMachine"
    )
    assert "PreprocessTask: TaskDefinition null" in unresolved


def test_a_task_role_the_state_machine_cannot_pass_is_caught(tmp_path: Path) -> None:
    def forget(template: dict[str, Any]) -> None:
        for policy in template["Resources"]["TrainingStateMachine"]["Properties"]["Policies"]:
            for statement in policy.get("Statement", []):
                if statement["Action"] == "iam:PassRole":
                    statement["Resource"] = [
                        r for r in statement["Resource"] if "TrainTaskRole" not in json.dumps(r)
                    ]

    translated = mutate(tmp_path, template=forget)
    problems = check_permissions(translated, all_needs(translated))
    # Once per state that runs the task (the inline and the Distributed Map each have one).
    assert sorted({p.split(" (")[0] for p in problems}) == [
        "TrainingStateMachine: TrainingStateMachineRole does not allow iam:PassRole on "
        "arn:aws:iam::123456789012:role/mlstack-TrainTaskRole"
    ]


def test_the_training_tasks_get_the_functions_stack_settings_and_nothing_per_run() -> None:
    """The task definitions' container `training` has the Globals' variables (the same settings
    the functions read), with its own service name; a run's input comes in its command."""
    template = load_template(ROOT / "template.yaml")
    given_to_functions = template["Globals"]["Function"]["Environment"]["Variables"]
    for name in TASK_DEFINITIONS:
        properties = template["Resources"][name]["Properties"]
        (container,) = properties["ContainerDefinitions"]
        assert container["Name"] == "training"
        environment = {item["Name"]: item["Value"] for item in container["Environment"]}
        assert environment.pop("POWERTOOLS_SERVICE_NAME") == "training-task"
        assert environment == given_to_functions, name
        assert properties["RequiresCompatibilities"] == ["FARGATE"]
        assert properties["NetworkMode"] == "awsvpc"
        assert properties["RuntimePlatform"] == {
            "OperatingSystemFamily": "LINUX",
            "CpuArchitecture": "X86_64",
        }
        assert properties["ExecutionRoleArn"] == {
            "Fn::GetAtt": ["TrainingTaskExecutionRole", "Arn"]
        }


def test_the_training_network_is_the_stacks_own_unless_subnets_are_given() -> None:
    """Empty TrainingSubnetIds: the stack's VPC, whose security group lets nothing in and only
    HTTPS out; given subnets, no VPC resource is created."""
    translated = real()
    network = {
        k: v for k, v in translated["Resources"].items() if v["Type"].startswith("AWS::EC2::")
    }
    assert {v.get("Condition") for v in network.values()} == {"CreateTrainingNetwork"}
    assert Resolver(translated).condition("CreateTrainingNetwork") is True
    given = Resolver(translated, {"TrainingSubnetIds": "subnet-1,subnet-2"})
    assert given.condition("CreateTrainingNetwork") is False
    kinds = {v["Type"] for v in network.values()}
    assert "AWS::EC2::NatGateway" not in kinds  # nothing of it costs while idle
    (endpoint,) = [v for v in network.values() if v["Type"] == "AWS::EC2::VPCEndpoint"]
    assert endpoint["Properties"]["VpcEndpointType"] == "Gateway"
    (group,) = [v for v in network.values() if v["Type"] == "AWS::EC2::SecurityGroup"]
    assert "SecurityGroupIngress" not in group["Properties"]
    assert group["Properties"]["SecurityGroupEgress"] == [
        {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to AWS APIs",
        }
    ]
