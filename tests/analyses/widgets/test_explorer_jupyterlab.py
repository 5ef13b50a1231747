"""The explorer widget inside a real JupyterLab server, driven by Selenium on headless Chromium:
the widget cell runs, the grid draws, and changing the prompt or the colouring re-draws it in place."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.analyses.report.browser import chrome, console_errors, needs_chromium

pytestmark = needs_chromium
REPO = Path(__file__).resolve().parents[3]
TOKEN = "pivotlens-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path, tiny_model_folder):
    """``jupyter lab`` on a free localhost port with a token, serving a notebook with the widget cell."""
    root = tmp_path / "lab"
    root.mkdir()
    cell = (
        f"from analyses.widgets.explorer import ExplorerWidget\n"
        f"widget = ExplorerWidget({{'tiny': {str(tiny_model_folder)!r}}}, prompt='the cloud is white', target='')\n"
        "widget"
    )
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)], metadata=kernel)
    nbformat.write(notebook, root / "explore.ipynb")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--allow-root",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as response:
                    json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("jupyter lab did not start within 2 minutes")
        yield f"{url}/lab/tree/explore.ipynb?token={TOKEN}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait(driver, script: str, what: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _run_first_cell(driver) -> None:
    """Select the cell (a click on its prompt) and press Shift+Enter, until the cell is queued."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            driver.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .jp-InputPrompt").click()
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        except (
            StaleElementReferenceException,
            ElementNotInteractableException,
            NoSuchElementException,
            ElementClickInterceptedException,
        ):
            time.sleep(0.5)
            continue
        prompt = driver.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .jp-InputPrompt").text
        if "*" in prompt or "1" in prompt:
            return
        time.sleep(0.5)
    raise AssertionError("could not run the widget cell")


GRID = "return document.querySelector('.pivotlens-explorer')"
REVISION = "const d = document.querySelector('.pivotlens-explorer'); return d && d.dataset.revision"
TICKS = (
    "return Array.from(document.querySelectorAll('.pivotlens-explorer .xtick text')).map(e => e.textContent).join(' ')"
)
LABELS = "return document.querySelectorAll('.pivotlens-explorer .heatmaplayer text').length"


def test_widget_draws_and_redraws_inside_jupyterlab(jupyter_lab, tmp_path):
    driver = chrome(tmp_path / "profile")
    try:
        driver.get(jupyter_lab)
        _wait(
            driver,
            "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            "return s && s.getAttribute('data-status') === 'idle'",
            "an idle kernel",
        )
        _run_first_cell(driver)
        _wait(driver, GRID, "the widget's grid")
        assert _wait(driver, REVISION, "the first drawing") == "1"
        assert _wait(driver, TICKS, "tick labels") == "the ·cloud ·is ·white"
        assert driver.execute_script(LABELS) == 3 * 4  # three layers x four positions

        prompt = driver.find_element(By.CSS_SELECTOR, ".widget-textarea textarea")
        prompt.clear()
        prompt.send_keys("the river is long and white")
        prompt.send_keys(Keys.TAB)  # the text box sends its value when it loses focus
        _wait(driver, REVISION.replace("d.dataset.revision", "d.dataset.revision === '2'"), "the re-drawn grid")
        assert driver.execute_script(TICKS) == "the ·river ·is ·long ·and ·white"
        assert driver.execute_script(LABELS) == 3 * 6
        assert len(driver.find_elements(By.CSS_SELECTOR, ".pivotlens-explorer")) == 1  # in place, not a new output

        colour = next(
            box for box in driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown") if "colour" in box.text
        ).find_element(By.TAG_NAME, "select")
        Select(colour).select_by_visible_text("lang")
        _wait(driver, REVISION.replace("d.dataset.revision", "d.dataset.revision === '3'"), "the re-coloured grid")
        assert "top-1 language" in driver.execute_script(
            "return document.querySelector('.pivotlens-explorer .legend').textContent"
        )
        assert [e for e in console_errors(driver) if "pivotlens" in e or "Plotly" in e] == []
    finally:
        driver.quit()
