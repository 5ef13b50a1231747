"""The explorer widget in Python: each control re-draws the same view with the grid of the new
input, and bad input shows its message while the last grid stays."""

from __future__ import annotations

from analyses.widgets.explorer import ExplorerWidget
from tests.conftest import tiny_backend


def test_every_control_redraws_and_bad_input_keeps_the_last_grid():
    widget = ExplorerWidget(
        {"tiny": tiny_backend("llama"), "tiny-gemma": tiny_backend("gemma3")},
        prompt="the cloud is white",
        target="river",
    )
    view = widget.view
    assert view.revision == 1 and view.figure["data"][0]["type"] == "heatmap"
    assert widget.exploration.model == "tiny-llama"
    widget.prompt.value = "the river is long"
    assert view.revision == 2 and list(widget.exploration.table["token"].unique()) == ["the", " river", " is", " long"]
    widget.color.value = "lang"
    assert view.revision == 3 and view.figure["layout"]["legend"]["title"]["text"] == "top-1 language"
    widget.model.value = "tiny-gemma"
    assert view.revision == 4 and widget.exploration.model == "tiny-gemma3"
    shown = view.figure
    widget.prompt.value = "  "
    assert view.revision == 4 and view.figure is shown
    assert "the prompt is empty" in widget.status.value
    widget.prompt.value = "the cloud"
    assert view.revision == 5 and widget.status.value == ""
