"""docs/local-cloud.md counts what template.yaml declares (its functions, state machines, tables
and log groups, in its prose and in its table of the translated stack), and says one thing of how
the local cloud delivers EventBridge events."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from mlstack.sam import load_template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CLOUD = ROOT / "docs" / "local-cloud.md"
NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
# What the page's table calls each type once SAM has translated it, and its own word for it.
TRANSLATED = {
    "AWS::Serverless::Function": ("AWS::Lambda::Function", "functions"),
    "AWS::Serverless::StateMachine": ("AWS::StepFunctions::StateMachine", "state machines"),
    "AWS::DynamoDB::Table": ("AWS::DynamoDB::Table", "tables"),
    "AWS::Logs::LogGroup": ("AWS::Logs::LogGroup", "log groups"),
}


def _declared() -> Counter[str]:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    return Counter(resource["Type"] for resource in resources.values())


@pytest.mark.parametrize("declared_type", TRANSLATED)
def test_the_table_of_the_translated_stack_counts_what_the_template_declares(
    declared_type: str,
) -> None:
    translated, _ = TRANSLATED[declared_type]
    counts = re.findall(
        rf"^\| (\d+) \u00d7 `{re.escape(translated)}`", LOCAL_CLOUD.read_text(), re.M
    )
    assert counts, f"docs/local-cloud.md's table does not count its {translated} resources"
    assert [int(count) for count in counts] == [_declared()[declared_type]]


def test_the_prose_counts_what_the_template_declares() -> None:
    text = " ".join(LOCAL_CLOUD.read_text().split())
    counted = {
        noun: NUMBERS[word]
        for word, noun in re.findall(
            rf"\b({'|'.join(NUMBERS)}) (functions|state machines|tables|log groups)\b", text
        )
    }
    assert counted, "docs/local-cloud.md counts none of the stack's resources in words"
    declared = {noun: _declared()[kind] for kind, (_, noun) in TRANSLATED.items()}
    for noun, count in counted.items():
        assert count == declared[noun], f"docs/local-cloud.md says {count} {noun}"
    assert {"functions", "state machines", "tables"} <= set(counted)


def test_eventbridge_delivery_is_called_synchronous_only() -> None:
    # mlstack.localcloud.moto_patches.deliver_rule_targets runs each target in-process before the
    # put returns (with the asynchronous invocation type's error handling).
    text = " ".join(LOCAL_CLOUD.read_text().split())
    said = re.findall(r"Delivery is (\w+)", text)
    assert said
    assert set(said) == {"synchronous"}, said
