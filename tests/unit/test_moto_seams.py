"""The moto internals the local cloud patches are where its patches expect them, with the
signatures they assume: a moto upgrade that moves or changes one fails here, naming the seam
(``mlstack.localcloud.moto_patches.MOTO_SEAMS``)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import moto
import pytest

from mlstack.localcloud import moto_patches
from mlstack.localcloud.faults import FaultPlan
from mlstack.localcloud.lambdas import InProcessLambdas
from mlstack.localcloud.moto_patches import (
    MOTO_SEAMS,
    PATCHED_SEAMS,
    RULE_DELIVERY,
    Seam,
    patched,
    signature_of,
)
from mlstack.localcloud.tasks import InProcessTasks

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_moto_is_the_pinned_one_the_seams_were_read_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        requirement
        for group in project["project"]["optional-dependencies"].values()
        for requirement in group
        if requirement.startswith("moto[")
    ]
    (pin,) = pins
    assert pin.endswith(f"=={moto.__version__}"), f"moto {moto.__version__} is not the pin {pin}"
    assert moto.__version__ in (moto_patches.__doc__ or ""), "the moto_patches docstring names it"


@pytest.mark.parametrize("seam", MOTO_SEAMS, ids=lambda seam: seam.path)
def test_each_seam_is_where_the_patch_expects_it(seam: Seam) -> None:
    try:
        owner = seam.owner()
    except (ImportError, AttributeError) as missing:
        pytest.fail(f"moto seam {seam.path}: {seam.module} or its class is gone ({missing})")
    assert hasattr(owner, seam.attribute), f"moto seam {seam.path}: no {seam.attribute} there"


@pytest.mark.parametrize(
    "seam", [s for s in MOTO_SEAMS if s.parameters is not None], ids=lambda seam: seam.path
)
def test_each_seam_has_the_signature_the_patch_assumes(seam: Seam) -> None:
    found = signature_of(seam.resolve())
    assert found == seam.parameters, (
        f"moto seam {seam.path} is now {found}; the patch assumes {seam.parameters}"
    )


@pytest.mark.parametrize("seam", [s for s in MOTO_SEAMS if s.only_uses], ids=lambda s: s.path)
def test_a_module_attribute_replaced_by_a_stand_in_is_used_only_as_the_stand_in_allows(
    seam: Seam,
) -> None:
    """``json_state_copies`` gives these modules a ``copy`` that has ``deepcopy`` only."""
    source = inspect.getsource(importlib.import_module(seam.module))
    used = set(re.findall(rf"\b{re.escape(seam.attribute)}\.(\w+)", source))
    assert used <= set(seam.only_uses), (
        f"moto seam {seam.path}: moto now uses {sorted(used)}; the stand-in has {seam.only_uses}"
    )


def _local_cloud_patches(tmp_path: Path) -> list[contextlib.AbstractContextManager[Any]]:
    """Every patch ``LocalCloud.start`` enters."""
    return [
        InProcessLambdas({}, functions_dir=tmp_path).patch_moto(),
        InProcessTasks(tmp_path).patch_moto(),
        FaultPlan().failing_sns_publishes(),
        moto_patches.deliver_rule_targets(),
        moto_patches.atomic_item_writes(),
        moto_patches.map_result_files(),
        moto_patches.execution_status_events(),
        moto_patches.batched_map_items(),
        moto_patches.json_state_copies(),
        moto_patches.shared_interpreter_clients(),
        moto_patches.state_machines_in_executing_backend(),
        moto_patches.resource_types_moto_lacks(),
    ]


def _stored(seam: Seam) -> Any:
    return inspect.getattr_static(seam.owner(), seam.attribute)


def test_every_patched_seam_is_patched_by_the_local_cloud_and_put_back(tmp_path: Path) -> None:
    """Each patch goes through ``patched`` (which checks the replacement takes moto's parameters
    by moto's names); afterwards moto is as it was, a staticmethod still a staticmethod."""
    before = {seam: _stored(seam) for seam in PATCHED_SEAMS}
    with contextlib.ExitStack() as stack:
        for patch in _local_cloud_patches(tmp_path):
            stack.enter_context(patch)
        untouched = [seam.path for seam in PATCHED_SEAMS if _stored(seam) is before[seam]]
    assert untouched == [], "registered seams no patch of the local cloud replaces"
    changed = [seam.path for seam in PATCHED_SEAMS if _stored(seam) is not before[seam]]
    assert changed == [], "seams not put back after the local cloud closed"


def test_only_a_registered_seam_can_be_patched() -> None:
    unregistered = Seam("moto.events.models:Rule.send_to_targets", "(self)")
    assert unregistered not in PATCHED_SEAMS
    with pytest.raises(LookupError, match="PATCHED_SEAMS"), patched(unregistered, print):
        pass


def test_a_replacement_must_name_its_parameters_as_moto_does() -> None:
    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        return None

    before = _stored(RULE_DELIVERY)
    with pytest.raises(TypeError, match="original_event"), patched(RULE_DELIVERY, send_to_targets):
        pass
    assert _stored(RULE_DELIVERY) is before
