"""Every example in README.md and docs/*.md is true (the convention: tests/docs_examples.py).

- Every block names a language that says what happens to it, and a block
  that is not run says why.
- The shell blocks of each document run in order against a fresh
  ``keyplane serve`` (its own data directory, a free loopback port), with the
  first-start credentials in ``$KP``, ``$KEY``, ``$PASSWORD`` and ``$CID``; the
  output shown is the real output, ids, keys and times masked.
- A configuration snippet is its shipped file, or a verbatim part of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import docs_examples
from tests.docs_examples import ROOT, Block, Shell, Step
from tests.functional.conftest import ServerLauncher, Workspace, parse_first_start

pytestmark = pytest.mark.e2e

DOCUMENTS = docs_examples.documents()


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def test_every_block_is_run_shipped_or_says_why_not() -> None:
    found = [
        problem
        for path in DOCUMENTS
        for b in docs_examples.blocks(path)
        for problem in docs_examples.problems(b)
    ]
    assert found == [], "\n".join(found)


def test_the_convention_refuses_an_unmarked_block_and_a_reasonless_skip(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```\nplain\n```\n"
        "<!-- not run:  -->\n```sh\nrm -rf /\n```\n"
        "```nginx\nserver {}\n```\n"
        "<!-- not run: needs systemd -->\n```sh\nsystemctl restart keyplane\n```\n"
    )
    blocks = docs_examples.blocks(page)
    verdicts = [bool(docs_examples.problems(b)) for b in blocks]
    assert verdicts == [True, True, True, False]
    assert [b.runs for b in blocks] == [False, False, False, False]


def test_each_command_of_an_sh_block_must_succeed_on_its_own(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh\nfalse\n\necho a \\\n  b\ntrue\n```\n")
    (block,) = docs_examples.blocks(page)
    steps = docs_examples.sh_steps(block)
    assert [(s.command, s.line) for s in steps] == [
        ("false", 2),
        ("echo a \\\n  b", 4),
        ("true", 6),
    ]
    shell = Shell(tmp_path, {"PATH": os.environ["PATH"]})
    try:
        assert [shell.run(s.command)[0] for s in steps] == [1, 0, 0]
    finally:
        shell.close()


def test_masks_hide_what_changes_from_run_to_run_and_nothing_else() -> None:
    shown = '{"id": "f0732ee2-6569-4d5a-a1d1-3d8287d5181d", "name": "bootstrap", "page": "Mj…"}'
    real = '{"id": "284c2e72-2321-4c9d-8570-710067e9dda2", "name": "bootstrap", "page": "MjAy"}'
    assert docs_examples.agrees(shown, real)
    assert not docs_examples.agrees(shown, real.replace("bootstrap", "reporting"))
    assert not docs_examples.agrees("200", "401")
    assert docs_examples.agrees("first\n…\nlast", "first\nmiddle\nmore\nlast\n")
    assert not docs_examples.agrees("", "something printed")


@pytest.mark.parametrize(
    ("path", "block"),
    [
        pytest.param(path, b, id=b.where)
        for path in DOCUMENTS
        for b in docs_examples.blocks(path)
        if b.marker in ("shipped", "excerpt")
    ],
)
def test_snippets_are_the_shipped_files_or_parts_of_them(path: Path, block: Block) -> None:
    shipped = (ROOT / block.marker_value).read_text(encoding="utf-8")
    if block.marker == "shipped":
        assert block.text == shipped, f"{block.where} differs from {block.marker_value}"
    else:
        assert block.found_in_source(), (
            f"{block.where} is not a verbatim part of {block.marker_value}"
        )


def _documents_that_run() -> list[Path]:
    return [path for path in DOCUMENTS if any(b.runs for b in docs_examples.blocks(path))]


@pytest.fixture
def shell(launcher: ServerLauncher, workspace: Workspace) -> Shell:
    """A shell where the server runs, as after ``make run`` and the tour's first lines."""
    server = launcher.start()
    first = parse_first_start(server.stdout())
    (workspace.cwd / ".venv").symlink_to(sys.prefix)
    env = workspace.env
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            "KP": server.base_url,
            "KEY": first.token,
            "PASSWORD": first.password,
            "CID": first.customer_id,
            "LC_ALL": "C.UTF-8",
        }
    )
    return Shell(workspace.cwd, env)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """The server runs where ``make run`` would: its data in ``./data``."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "data").mkdir()
    return Workspace(cwd=cwd, data_dir=cwd / "data")


@pytest.mark.parametrize("path", _documents_that_run(), ids=_ids(_documents_that_run()))
def test_shell_examples_run_and_show_their_real_output(path: Path, shell: Shell) -> None:
    try:
        for block in docs_examples.blocks(path):
            if not block.runs:
                continue
            examples = (
                docs_examples.steps if block.language == "console" else docs_examples.sh_steps
            )
            for step in examples(block):
                _check(block, step, *shell.run(step.command))
    finally:
        shell.close()


def _check(block: Block, step: Step, status: int, output: str) -> None:
    where = f"{docs_examples.shown_path(block.path)}:{step.line}"
    if status != 0:
        pytest.fail(f"{where}: exited {status}\n$ {step.command}\n{output}", pytrace=False)
    if block.language == "sh":
        return
    if not docs_examples.agrees(step.shown, output):
        pytest.fail(
            f"{where}: the output shown is not the real output\n$ {step.command}\n"
            f"--- shown (masked) ---\n{docs_examples.mask(step.shown)}\n"
            f"--- real (masked) ---\n{docs_examples.mask(output)}",
            pytrace=False,
        )


NGINX_FILES = sorted((ROOT / "examples" / "nginx").glob("*.conf"))
NGINX_TEST_CONFIG = """\
user root;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ }}
http {{
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {site};
}}
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for the recipes' ``ssl_certificate``."""
    directory = tmp_path_factory.mktemp("certificate")
    chain, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=keys.example.com", "-keyout", str(key), "-out", str(chain)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return chain, key


@pytest.mark.parametrize("recipe", NGINX_FILES, ids=[path.name for path in NGINX_FILES])
def test_nginx_accepts_each_shipped_file(
    recipe: Path, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    """``nginx -t`` on the file as shipped, with only its certificate and log paths moved here."""
    chain, key = certificate
    site = recipe.read_text(encoding="utf-8")
    for old, new in {
        "/etc/ssl/keys.example.com/fullchain.pem": str(chain),
        "/etc/ssl/keys.example.com/privkey.pem": str(key),
        "/var/log/nginx/": f"{tmp_path}/",
    }.items():
        site = site.replace(old, new)
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    config = tmp_path / "nginx.conf"
    config.write_text(NGINX_TEST_CONFIG.format(root=tmp_path, site=tmp_path / "site.conf"))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [binary, "-t", "-c", str(config), "-p", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"nginx -t refuses {recipe.name}:\n{result.stderr}"
    assert "syntax is ok" in result.stderr


def test_nginx_check_refuses_a_broken_file(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    """The check above can fail: a directive nginx does not know is refused."""
    broken = tmp_path / "broken.conf"
    broken.write_text("server { listen 127.0.0.1:1; no_such_directive on; }\n")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(AssertionError, match="no_such_directive"):
        test_nginx_accepts_each_shipped_file(broken, certificate, run)
