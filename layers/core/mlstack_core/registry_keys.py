"""The registry table's key layout and alias names: the one definition that both the boto3
``Registry`` and the prediction function's HTTP reads (``mlstack_predict.awshttp``) use.

=====================  ==========================  ===============================================
pk                     sk                          item
=====================  ==========================  ===============================================
``MODELS``             ``<model>``                 index of model names (for listing)
``MODEL#<model>``      ``COUNTER``                 ``next_version``: last version number handed out
``MODEL#<model>``      ``VERSION#<00000001>``      one version: status + JSON document
``MODEL#<model>``      ``ALIAS#<alias>``           the version an alias points at
``MODEL#<model>``      ``HISTORY#<time>#<id>``     one alias move or status change: who, when, why
``MODEL#<model>``      ``ALLOCATION#<run>#<st>``   the version number a run's state was given
=====================  ==========================  ===============================================

The run lock is not here: it has a table of its own (``mlstack_runlock.lock_table``), so the role
that frees locks cannot delete registry items.

Standard library only: the serving path imports it without boto3.
"""

from __future__ import annotations

from typing import Final

PRODUCTION: Final = "production"
# Challenger aliases read by the prediction function: a canary answers ``share`` of the requests,
# a shadow is scored silently beside every production request (outputs compared, as metrics).
CANARY: Final = "canary"
SHADOW: Final = "shadow"
CHALLENGER_ALIASES: Final = (CANARY, SHADOW)

# Version statuses (the serving path reads them too).
STATUS_REGISTERED: Final = "Registered"
STATUS_PENDING_APPROVAL: Final = "PendingApproval"
STATUS_APPROVED: Final = "Approved"
STATUS_REJECTED: Final = "Rejected"
STATUS_ARCHIVED: Final = "Archived"

MODELS_PK: Final = "MODELS"
ALIAS_PREFIX: Final = "ALIAS#"
VERSION_PREFIX: Final = "VERSION#"
HISTORY_PREFIX: Final = "HISTORY#"
COUNTER_SK: Final = "COUNTER"
ALLOCATION_PREFIX: Final = "ALLOCATION#"


def model_pk(model: str) -> str:
    return f"MODEL#{model}"


def version_sk(version: int) -> str:
    return f"{VERSION_PREFIX}{version:08d}"


def alias_sk(alias: str) -> str:
    return f"{ALIAS_PREFIX}{alias}"


def allocation_sk(execution_arn: str, step: str) -> str:
    return f"{ALLOCATION_PREFIX}{execution_arn}#{step}"
