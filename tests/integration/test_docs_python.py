"""The Python snippets of README.md and docs/*.md run, with pytest-examples.

A snippet that is an excerpt of keyplane's own code names its file instead
(``<!-- excerpt: PATH -->``, checked by tests/functional/test_docs_examples.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

from keyplane.domain.webhooks import signature
from tests import docs_examples
from tests.docs_examples import ROOT


def _not_run() -> set[tuple[str, int]]:
    return {
        (str(b.path), b.line)
        for path in docs_examples.documents()
        for b in docs_examples.blocks(path)
        if b.marker in ("not run", "excerpt")
    }


# Documents whose Python blocks need a live server: a functional test runs them.
RUN_ELSEWHERE = {
    "docs/client.md": "tests/functional/test_client_live.py",
    "README.md": "tests/functional/test_client_live.py",
}

EXAMPLES = [
    example
    for example in find_examples(*docs_examples.documents())
    if (str(example.path), example.start_line) not in _not_run()
    and str(example.path.relative_to(ROOT)) not in RUN_ELSEWHERE
]


def _where(example: CodeExample) -> str:
    return f"{example.path.relative_to(ROOT)}:{example.start_line}"


def test_every_python_block_is_found() -> None:
    """pytest-examples and the docs runner see the same Python blocks."""
    ours = {
        (str(b.path), b.line)
        for path in docs_examples.documents()
        for b in docs_examples.blocks(path)
        if b.language == "python"
    }
    theirs = {(str(e.path), e.start_line) for e in find_examples(*docs_examples.documents())}
    assert ours == theirs
    assert len(EXAMPLES) >= 2
    for document, test in RUN_ELSEWHERE.items():
        assert (ROOT / test).is_file()
        assert f'"{document.split("/")[-1]}"' in (ROOT / test).read_text(encoding="utf-8")


@pytest.mark.parametrize("example", EXAMPLES, ids=[_where(e) for e in EXAMPLES])
def test_python_snippet_runs(example: CodeExample, eval_example: EvalExample) -> None:
    defined = eval_example.run(example)
    check = CHECKS.get(_where(example).split(":")[0])
    if check is not None:
        check(defined)


def _webhook_receiver(defined: dict[str, Any]) -> None:
    """The receiver in docs/webhooks.md accepts what keyplane signs, once, and only that."""
    verified, receive = defined["verified"], defined["receive"]
    secret = "whsec_" + "ab" * 32
    body = b'{"type": "accesskey_created", "data": {}}'
    event = str(uuid.uuid4())
    now = int(time.time())
    signed = signature(secret, now, event, body)
    assert verified(secret, signed, event, body)
    assert not verified(secret, signed, event, body + b" ")
    assert not verified("whsec_" + "cd" * 32, signed, event, body)
    assert not verified(secret, signature(secret, now - 301, event, body), event, body)
    assert not verified(secret, signed, str(uuid.uuid4()), body)  # replayed under a fresh id
    assert not verified(secret, signed.rsplit(",v2=", 1)[0], event, body)  # v1 alone
    assert not verified(secret, "t=soon," + signed.split(",", 1)[1], event, body)
    seen: list[dict[str, Any]] = []
    receive.__globals__["handle"] = seen.append  # the receiver's own code: remember it
    assert receive(secret, signed, event, body) == 200
    assert receive(secret, signed, event, body) == 200  # a retry of the same event
    assert receive(secret, signed, str(uuid.uuid4()), body) == 400
    assert seen == [{"type": "accesskey_created", "data": {}}]  # handled once


def _python_service(defined: dict[str, Any]) -> None:
    """The service in docs/gateway.md routes /v1.0/calls behind the middleware."""
    app = defined["app"]
    assert "/v1.0/calls" in {getattr(route, "path", None) for route in app.routes}
    assert any(m.cls.__name__ == "KeyplaneAuthMiddleware" for m in app.user_middleware)


CHECKS = {
    "docs/webhooks.md": _webhook_receiver,
    "docs/gateway.md": _python_service,
}
