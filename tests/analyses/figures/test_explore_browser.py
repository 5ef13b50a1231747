"""The explorer's standalone page in headless Chromium (Selenium + Debian's chromium-driver): every
cell is drawn with its top-1 token, hovering a cell shows its top-k, a long prompt opens on a
window that scrolls, and the console stays clean."""

from __future__ import annotations

import html
import time

import pytest
from selenium.webdriver.common.actions.action_builder import ActionBuilder

from analyses.figures.explore import DIV_ID, WINDOW, _label
from analyses.pipelines.explore import explore
from probes.backend import wrap
from tests.analyses.report.browser import chrome, console_errors, needs_chromium
from tests.conftest import CORPUS, tiny_backend, tiny_hf_model, tiny_tokenizer

pytestmark = needs_chromium
PROMPT = "the cloud is white and the river is long"


@pytest.fixture
def driver(tmp_path):
    browser = chrome(tmp_path / "profile")
    yield browser
    browser.quit()


def _open(driver, page) -> None:
    driver.get(page.as_uri())
    for _ in range(100):
        if driver.execute_script(f"return document.querySelectorAll('#{DIV_ID} .heatmaplayer text').length"):
            return
        time.sleep(0.1)
    raise AssertionError(f"the heatmap of {page} was never drawn")


def _drawn_labels(driver) -> list[str]:
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll('#{DIV_ID} .heatmaplayer text')).map(e => e.textContent)"
    )


def _cell_center(driver, layer: int, position: int) -> tuple[float, float]:
    return driver.execute_script(
        f"const g = document.getElementById('{DIV_ID}'), r = g.getBoundingClientRect();"
        "const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;"
        "return [r.left + xa._offset + xa.l2p(arguments[1]), r.top + ya._offset + ya.l2p(arguments[0])];",
        layer,
        position,
    )


def _hover(driver, layer: int, position: int) -> str:
    x, y = _cell_center(driver, layer, position)
    action = ActionBuilder(driver)
    action.pointer_action.move_to_location(int(x), int(y))
    action.perform()
    for _ in range(50):
        text = driver.execute_script(
            f"const h = document.querySelector('#{DIV_ID} .hoverlayer .hovertext');return h ? h.textContent : ''"
        )
        if text:
            return text
        time.sleep(0.1)
    return ""


def test_page_draws_every_cell_and_hovering_shows_the_top_k(driver, tmp_path):
    found = explore(tiny_backend("llama"), PROMPT, target="river", latent_word="cloud", top_k=4)
    page = found.write_html(tmp_path / "page.html")
    _open(driver, page)
    table = found.table
    expected = sorted(html.unescape(_label(tokens[0])) for tokens in table["top_tokens"])
    assert sorted(_drawn_labels(driver)) == expected  # one label per cell: layers x positions
    for layer, position in ((0, 0), (1, 4), (2, 8)):
        row = table[(table.layer == layer) & (table.position == position)].iloc[0]
        shown = _hover(driver, layer, position)
        assert f"layer {layer}, position {position}" in shown
        for token, prob in zip(row["top_tokens"], row["top_probs"]):
            assert f"{html.unescape(_label(token, 20))}  {prob:.3f}" in shown
    assert console_errors(driver) == []


def test_a_thousand_token_page_opens_on_a_window_and_scrolls(driver, tmp_path):
    model = tiny_hf_model("llama")
    model.config.max_position_embeddings = 2048
    backend = wrap(model, tiny_tokenizer(), model_name="tiny-long")
    found = explore(backend, " ".join(CORPUS[i % 5] for i in range(130)))
    n = found.table["position"].nunique()
    assert n >= 1000
    _open(driver, found.write_html(tmp_path / "long.html"))
    assert len(_drawn_labels(driver)) == backend.n_layers * WINDOW  # the window's cells, each labelled
    shown = driver.execute_script(f"return document.getElementById('{DIV_ID}')._fullLayout.xaxis.range")
    assert shown == pytest.approx([n - WINDOW - 0.5, n - 0.5])
    assert driver.execute_script(f"return document.querySelectorAll('#{DIV_ID} .slider-container').length") == 1
    start = driver.execute_script(f"return document.getElementById('{DIV_ID}')._fullLayout.xaxis.range[0]")
    x, y = _cell_center(driver, 1, n - WINDOW + 3)
    drag = ActionBuilder(driver)
    drag.pointer_action.move_to_location(int(x), int(y)).pointer_down()
    drag.pointer_action.move_to_location(int(x) + 350, int(y)).pointer_up()
    drag.perform()
    moved = driver.execute_script(f"return document.getElementById('{DIV_ID}')._fullLayout.xaxis.range[0]")
    assert moved < start - 3  # dragging pans the window towards the beginning of the prompt
    assert console_errors(driver) == []
