"""Fixtures of the console's browser tests: a real `python -m scheduler` on the local backend,
headless Chromium (Debian's package, driven by Playwright), pages that fail their test on a
script error or a Content-Security-Policy violation, and the axe-core accessibility checker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.factories import free_port

ROOT = Path(__file__).parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "tools" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-output" / "console"
START_TIMEOUT_SECONDS = 30.0
EXPECT_TIMEOUT_MS = 15_000


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        )
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[test]'"
    if not AXE.exists():
        return f"{AXE} is missing: npm ci --prefix tools"
    return None


# The job the tests run: it prints its payload, writes a result, sleeps $SLEEP seconds and exits
# with $EXIT; both are variables a test may set per job.
RADIXCONFIG = """\
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata:
  name: myapp
spec:
  environments:
    - name: dev
  jobs:
    - name: compute
      image: busybox:1.36
      schedulerPort: 8000
      payload:
        path: /compute/args
      command: ["sh", "-c"]
      args:
        - >-
          echo "attempt $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') of $JOB_LABEL";
          echo "payload: $(cat "$RADIX_PAYLOAD_PATH/payload")";
          echo "result of $JOB_LABEL" > "$RADIX_RESULT_PATH";
          sleep "$SLEEP";
          echo "done, exit $EXIT";
          exit "$EXIT"
      variables:
        SLEEP: "1"
        EXIT: "0"
        JOB_LABEL: "a test job"
"""


@dataclass
class Scheduler:
    """A scheduler process; `restart()` replaces it with a new one on the same port and state."""

    directory: Path
    flags: tuple[str, ...] = ()
    # The API token the scheduler requires (from a file), and `api()` sends; None: none.
    token: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The scheduler's command line (writing the files it names)."""
        config = self.directory / "radixconfig.yaml"
        config.write_text(RADIXCONFIG)
        token_flags: tuple[str, ...] = ()
        if self.token is not None:
            token_file = self.directory / "api-token"
            token_file.write_text(self.token)
            token_flags = ("--api-token-file", str(token_file))
        return [
            *(sys.executable, "-m", "scheduler", "--config", str(config)),
            *("--job", "compute", "--environment", "dev", "--backend", "local"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--state-dir", str(self.directory / "state"), *token_flags, *self.flags),
        ]

    def environ(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)}

    def start(self) -> None:
        command, environ = self.command(), self.environ()
        with (self.directory / "scheduler.log").open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._ready():
            assert self.proc.poll() is None, (self.directory / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not get ready"
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """A call as a script makes it: JSON (or `raw` bytes) in, JSON (or text) out."""
        data = raw if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def job(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, created = self.api("POST", "/jobs", body or {})
        assert status == 200, created
        result: dict[str, Any] = created
        return result


@pytest.fixture(scope="module")
def scheduler_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Scheduler]]:
    started: list[Scheduler] = []

    def start(*flags: str, token: str | None = None) -> Scheduler:
        scheduler = Scheduler(tmp_path_factory.mktemp("scheduler"), flags, token)
        started.append(scheduler)
        scheduler.start()
        return scheduler

    try:
        yield start
    finally:
        for scheduler in started:
            scheduler.stop()


@pytest.fixture(scope="module")
def live(scheduler_factory: Callable[..., Scheduler]) -> Scheduler:
    """The module's scheduler; tests find their own jobs by jobId."""
    return scheduler_factory("--max-parallel", "4")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # Generous for a busy machine; a passing check returns as soon as it holds.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _page(browser: Any, **options: Any) -> Iterator[Any]:
    """A page in a fresh context; its test fails on an uncaught script error or a CSP report."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **options)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from _page(browser)


@pytest.fixture
def axe_page(browser: Any) -> Iterator[Any]:
    """A page where the axe-core script may be injected (an inline script: past the CSP)."""
    yield from _page(browser, bypass_csp=True)


# A page holding a 1 MiB payload in its form takes chromium long to draw on 2 busy cores.
SCREENSHOT_TIMEOUT_MS = 45_000


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, timeout=SCREENSHOT_TIMEOUT_MS)
    return path


def serious_accessibility_violations(page: Any) -> list[str]:
    """What axe-core finds of impact `serious` or `critical` on the page as it is."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


# -- The Kubernetes backend: the fake API server (tests/fakekube) in a process of its own --------

# The one job of a scheduler on the fake cluster. The fake's containers understand `echo`,
# `sleep` and `exit` in `sh -c` (no variables): each test gives its job's script.
KUBE_RADIXCONFIG = """\
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata:
  name: myapp
spec:
  environments:
    - name: dev
  jobs:
    - name: compute
      image: busybox:1.36
      schedulerPort: 8000
      command: ["sh", "-c"]
      args: [{script}]
"""


@dataclass
class FakeCluster:
    """`python -m tests.fakekube` on a free port, its clock 20x fast; its kubeconfig is ready
    once it has printed its URL."""

    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def start(self) -> None:
        from tests.fakekube.testing import server_command

        with (self.directory / "fakekube.log").open("ab") as log:
            self.proc = subprocess.Popen(
                server_command(self.kubeconfig),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().decode().strip()
        assert url.startswith("http://"), (self.directory / "fakekube.log").read_text()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class KubeScheduler(Scheduler):
    """A scheduler process on the Kubernetes backend, in a namespace of its own of the fake
    cluster; its job runs `sh -c script`, and `environ` adds settings (SCHEDULER_...).
    `restart()` replaces the scheduler only: the cluster keeps the jobs."""

    cluster: FakeCluster | None = None
    namespace: str = "console"
    script: str = "echo hello; sleep 1"
    extra_environ: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        assert self.cluster is not None
        config = self.directory / "radixconfig.yaml"
        config.write_text(KUBE_RADIXCONFIG.format(script=json.dumps(self.script)))
        return [
            *(sys.executable, "-m", "scheduler", "--config", str(config)),
            *("--job", "compute", "--environment", "dev", "--backend", "kubernetes"),
            *("--kubeconfig", str(self.cluster.kubeconfig)),
            *("--host", "127.0.0.1", "--port", str(self.port), *self.flags),
        ]

    def environ(self) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        return {**environ, "SCHEDULER_NAMESPACE": self.namespace, **self.extra_environ}


@pytest.fixture(scope="module")
def fake_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCluster]:
    """The module's fake Kubernetes cluster; each scheduler on it has a namespace of its own."""
    cluster = FakeCluster(tmp_path_factory.mktemp("fakekube"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def kube_scheduler_factory(
    fake_cluster: FakeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., KubeScheduler]]:
    """`start(script, *flags, **environ)`: a scheduler on the fake cluster whose job runs
    `sh -c script`, in a new namespace."""
    started: list[KubeScheduler] = []

    def start(script: str, *flags: str, **environ: str) -> KubeScheduler:
        scheduler = KubeScheduler(
            tmp_path_factory.mktemp("scheduler"),
            flags,
            cluster=fake_cluster,
            namespace=f"console-{len(started)}",
            script=script,
            extra_environ=environ,
        )
        started.append(scheduler)
        scheduler.start()
        return scheduler

    try:
        yield start
    finally:
        for scheduler in started:
            scheduler.stop()
