"""Browser tests of the workbench: the service served for real, driven by Debian's chromium.

``ordergate serve`` runs in a subprocess on a port the kernel hands out, with three access
tokens (audit, decide, admin) and the order-to-cash fixture policy; Playwright drives
``/usr/bin/chromium`` (never a downloaded browser). Every page a test visits through ``Visit``
is saved as a screenshot under ``$ORDERGATE_SCREENSHOTS`` (default ``var/screenshots``, not
committed).

Without chromium the tests skip with the reason; under ``CI=true`` they fail instead.

Use in a test module::

    pytest_plugins = ("browser",)  # its fixtures

    def test_x(visit):
        visit.sign_in()
        visit.go("/ui/versions")
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import O2C_RULES, ROOT
from test_serve_watch import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("ORDERGATE_SCREENSHOTS") or ROOT / "var" / "screenshots")
#: the tokens the served app knows: role -> (name, secret)
TOKENS = {
    "audit": ("auditor", "audit-9f2c4e1b7a6d3085c2e1"),
    "decide": ("crm-adapter", "decide-5b8e2a9c1f4d7063a9b8"),
    "admin": ("release", "admin-3e7a1c9f5b2d8046e7c3"),
}


def need_chromium() -> None:
    """Skip (fail under CI=true) when chromium or Playwright is missing."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is missing (pip install playwright==1.63.0, the dev extras)"
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run in CI: {problem}")
    pytest.skip(f"browser tests need chromium: {problem}")


@dataclass
class Served:
    """A running ``ordergate serve``."""

    url: str
    database_url: str
    proc: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, body: t.Any = None, role: str = "admin") -> tuple[int, t.Any]:
        """Call the JSON API with the token of ``role``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {TOKENS[role][1]}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def decide(self, action: str, facts: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
        status, body = self.api("POST", "/v1/decisions", {"action": action, "input": facts, **extra}, role="decide")
        assert status in (200, 400, 403, 422), (status, body)
        return t.cast(dict, body)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start_server(folder: Path, rules: Path = O2C_RULES, **env: str) -> Served:
    """``ordergate serve`` on a free port, the three ``TOKENS`` configured; waits until ready."""
    port = free_port()
    database_url = f"sqlite:///{folder / 'workbench.sqlite'}"
    log = folder / "serve.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_")}
    environment.update({f"ORDERGATE_TOKENS_{role.upper()}": f"{name}:{secret}"
                        for role, (name, secret) in TOKENS.items()})
    environment.update(PYTHONPATH=str(ROOT), **env)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from cli import main; main()", "serve", "--port", str(port), "--workers", "2",
             "--rules", str(rules), "--database", database_url],
            cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=environment)
    served = Served(f"http://127.0.0.1:{port}", database_url, proc, log)
    deadline = time.monotonic() + 90
    while not _ready(served.url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(served)
            raise RuntimeError(f"ordergate serve did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    return served


def stop_server(served: Served) -> None:
    if served.proc.poll() is None:
        os.killpg(served.proc.pid, 15)
        try:
            served.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(served.proc.pid, 9)
            served.proc.wait(timeout=10)


@dataclass
class Visit:
    """One browser tab on the served workbench; every page it shows is screenshotted."""

    page: t.Any
    served: Served
    name: str
    shots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        for stale in SCREENSHOTS.glob(f"{self.name}-[0-9][0-9]-*.png"):  # of an earlier run
            stale.unlink()

    def shot(self, label: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", label or self.page.url.split("/ui", 1)[-1]).strip("-") or "home"
        path = SCREENSHOTS / f"{self.name}-{len(self.shots) + 1:02d}-{slug[:60]}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def go(self, path: str, *, expect: int = 200) -> t.Any:
        response = self.page.goto(self.served.url + path)
        assert response is not None and response.status == expect, (path, response and response.status)
        self.shot()
        return response

    def submit(self, selector: str = "main form button[type=submit]", *, expect: int = 200) -> t.Any:
        """Click a submit button and wait for the page it leads to (its status is checked)."""
        with self.page.expect_navigation() as navigation:
            self.page.click(selector)
        response = navigation.value
        assert response is not None and response.status == expect, (self.page.url, response and response.status)
        self.shot()
        return response

    @staticmethod
    def secret(role: str) -> str:
        """The secret of the served app's token of ``role``."""
        return TOKENS[role][1]

    def sign_in(self, role: str = "audit", *, expect: int = 200) -> t.Any:
        self.go("/ui/sign-in")
        self.page.get_by_label("Access token (secret)").fill(self.secret(role))
        return self.submit(expect=expect)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Served]:
    need_chromium()
    server = start_server(tmp_path_factory.mktemp("workbench"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> t.Iterator[t.Any]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _visit(browser: t.Any, served: Served, request: pytest.FixtureRequest, javascript: bool) -> t.Iterator[Visit]:
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        yield Visit(page, served, re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-"))
    finally:
        context.close()


@pytest.fixture
def visit(browser: t.Any, served: Served, request: pytest.FixtureRequest) -> t.Iterator[Visit]:
    """A fresh browser context (no cookies) on the served workbench."""
    yield from _visit(browser, served, request, javascript=True)


@pytest.fixture
def visit_no_js(browser: t.Any, served: Served, request: pytest.FixtureRequest) -> t.Iterator[Visit]:
    """The same with JavaScript disabled."""
    yield from _visit(browser, served, request, javascript=False)


def docs_image(path: Path) -> None:
    """The README's picture of the workbench: the decision log searched for PRC-09 denials, on a
    server started as the tests start it (a few decisions logged first)."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        served = start_server(Path(folder))
        try:
            for number, (integration, state) in enumerate([(False, "submitted"), (True, "submitted"),
                                                           (False, "active"), (False, "submitted")] * 3):
                served.decide("salesorder.update", {
                    "context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}},
                    "subject": {"is_integration_user": integration},
                    "resource": {"salesorder": {"statecode": state, "ordernumber": f"SO-10{number:03d}"}}})
            with sync_playwright() as playwright:
                launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = launched.new_page(viewport={"width": 1100, "height": 640})
                visit = Visit(page, served, "docs")
                visit.sign_in()
                visit.go("/ui/decisions?rule=PRC-09&allow=denied&text=SO-10")
                page.screenshot(path=str(path))
                launched.close()
        finally:
            stop_server(served)


if __name__ == "__main__":  # python tests/browser.py docs/img/workbench.png
    sys.path.insert(0, str(Path(__file__).parent))
    docs_image(Path(sys.argv[1]))
