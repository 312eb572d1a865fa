"""The local cloud's in-process Lambda runner gives a function one invocation at a time, as one
Lambda execution environment does; other functions do not wait."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlstack.localcloud.lambdas import InProcessLambdas

pytestmark = pytest.mark.unit


def test_a_function_s_invocations_take_turns_and_other_functions_do_not_wait(
    tmp_path: Path,
) -> None:
    lambdas = InProcessLambdas({}, functions_dir=tmp_path)
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with lambdas.one_at_a_time("predict"):
            inside.set()
            release.wait(timeout=10)
            order.append("first")

    def second() -> None:
        with lambdas.one_at_a_time("predict"):
            order.append("second")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(timeout=10)
    threads[1].start()
    threads[1].join(timeout=0.2)
    assert threads[1].is_alive(), "a second invocation of the function waits for the first"
    with lambdas.one_at_a_time("register"):  # another function: not held
        order.append("other")
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["other", "first", "second"]


def test_an_invocation_may_invoke_its_own_function_in_the_same_thread(tmp_path: Path) -> None:
    lambdas = InProcessLambdas({}, functions_dir=tmp_path)
    with lambdas.one_at_a_time("predict"), lambdas.one_at_a_time("predict"):
        pass
