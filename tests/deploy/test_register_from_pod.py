"""The e2e's schema registration from a tower pod: tried again while refused, and its reason kept."""

from __future__ import annotations

import subprocess
from typing import Any

from pipeline.deploy.cluster.e2e import _register_schemas


class _Pod:
    """kubectl exec answers, in order; the last one repeats."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers, self.calls = list(answers), 0

    def kubectl_run(self, *args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls += 1
        code, out, err = self.answers[min(self.calls, len(self.answers)) - 1]
        return subprocess.CompletedProcess(list(args), code, out, err)


_TIMEOUT = (
    1,
    "",
    "corridor: the schema registry at http://sr:8080 refused or did not answer: timed out",
)
_OK = (0, "corridor.telemetry-value: ids 1, 2 (BACKWARD)\ncorridor.advisory-value: ids 3 (BACKWARD)\n", "")


def test_a_refusal_is_tried_again_and_said() -> None:
    pod, said = _Pod(_TIMEOUT, _OK), []
    assert _register_schemas(pod, "corridor", said.append, patience=5, interval=0.01) == []  # type: ignore[arg-type]
    assert pod.calls == 2
    assert "timed out" in said[0] and "after 1 refusals" in said[1]


def test_a_registry_that_never_takes_them_is_a_problem_with_its_reason() -> None:
    pod = _Pod(_TIMEOUT)
    problems = _register_schemas(pod, "corridor", lambda _: None, patience=0.05, interval=0.01)  # type: ignore[arg-type]
    assert len(problems) == 1 and pod.calls >= 2
    assert "did not answer: timed out" in problems[0]


def test_an_exit_without_words_still_says_its_status() -> None:
    problems = _register_schemas(_Pod((137, "", "")), "corridor", lambda _: None, patience=0)  # type: ignore[arg-type]
    assert "exit 137" in problems[0]
