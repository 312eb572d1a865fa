"""``mlstack COMMAND --help`` teaches the command on its own: the summary ``mlstack --help`` shows,
every positional argument explained, an example line; walked over the real parser, so a new
command without them fails here."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from mlstack.cli.main import build_parser


def _subcommands(
    parser: argparse.ArgumentParser, path: str = "mlstack"
) -> Iterator[tuple[str, str | None, argparse.ArgumentParser]]:
    """(``mlstack COMMAND``, its summary in the parent's list, its parser), nested ones too."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help for choice in action._choices_actions}
        for name, command in action.choices.items():
            words = f"{path} {name}"
            yield words, summaries.get(name), command
            yield from _subcommands(command, words)


COMMANDS = list(_subcommands(build_parser()))


def test_the_walk_finds_every_command() -> None:
    names = {words for words, _, _ in COMMANDS}
    assert {"mlstack train", "mlstack feedback", "mlstack local up", "mlstack history"} <= names
    assert len(names) >= 18


@pytest.mark.parametrize(("words", "summary", "command"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_each_command_says_what_it_does_explains_its_arguments_and_shows_an_example(
    words: str, summary: str | None, command: argparse.ArgumentParser
) -> None:
    assert summary, f"{words} has no summary in `mlstack --help`"
    assert command.description == summary, f"{words} --help does not repeat its summary"
    positionals = [
        a
        for a in command._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]
    unexplained = [a.dest for a in positionals if not a.help]
    assert not unexplained, f"{words}: positional arguments without help: {unexplained}"
    text = command.format_help()
    examples = [line.strip() for line in text.splitlines() if line.strip().startswith(words)]
    assert examples, f"{words} --help has no example line starting with {words!r}"
    assert summary in text


def _help(words: str) -> str:
    return next(command for w, _, command in COMMANDS if w == words).format_help()


def test_feedback_help_gives_the_file_format() -> None:
    text = _help("mlstack feedback")
    for needed in ("request_id", "row", "label", "quality.key_trusted", "header"):
        assert needed in text, needed


def test_train_help_says_a_new_model_needs_a_target() -> None:
    text = _help("mlstack train")
    assert "new model needs --target" in " ".join(text.split())
