"""The lens explorer as a JupyterLab widget: a prompt box, the lens, the colouring, the target and
latent words and the model; every change re-draws the grid in place.

The controls are ipywidgets; the grid is a small anywidget that draws the explorer's plotly figure
with the plotly.js of the installed ``plotly`` package (sent once to the page, so the widget works
offline, nothing from a CDN)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

import anywidget
import ipywidgets as widgets
import traitlets
from plotly.offline import get_plotlyjs

from analyses.figures.explore import COLORS
from analyses.pipelines.explore import Exploration, available_lenses, explore
from probes.backend import Backend, BackendName, load
from probes.backend.errors import PivotlensError
from probes.backend.models import DEFAULT_MODEL, EMBEDDED

_ESM = """
function plotly(source) {
  if (!window.Plotly) {  // the bundle sets window.Plotly when it runs as a classic script
    const script = document.createElement("script");
    script.textContent = source;
    document.head.appendChild(script);
  }
  return window.Plotly;
}

export default {
  render({ model, el }) {
    const div = document.createElement("div");
    div.className = "pivotlens-explorer";
    el.appendChild(div);
    const draw = () => {
      const figure = model.get("figure");
      plotly(model.get("_plotly_js")).react(div, figure.data || [], figure.layout || {}, { displaylogo: false });
      div.dataset.revision = String(model.get("revision"));
    };
    draw();
    model.on("change:figure", draw);
    return () => model.off("change:figure", draw);
  },
};
"""


class PlotlyView(anywidget.AnyWidget):
    """One plotly figure, re-drawn in place (``Plotly.react``) whenever :attr:`figure` changes."""

    _esm = _ESM
    _plotly_js = traitlets.Unicode().tag(sync=True)
    figure = traitlets.Dict().tag(sync=True)
    revision = traitlets.Int(0).tag(sync=True)  # how many figures were drawn (the page shows it)

    @traitlets.default("_plotly_js")
    def _bundled_plotly(self) -> str:
        return get_plotlyjs()

    def show(self, fig) -> None:
        with self.hold_sync():
            self.figure = json.loads(fig.to_json())
            self.revision += 1


class ExplorerWidget(widgets.VBox):
    """The explorer for any prompt. ``models`` maps a dropdown name to a loaded :class:`Backend` or
    to what :func:`probes.backend.load` takes (embedded name, folder, hub id); models load on first
    use and stay loaded. :attr:`exploration` holds the last result (its ``table`` included)."""

    def __init__(
        self,
        models: Mapping[str, Backend | str] | None = None,
        *,
        prompt: str = 'Français: "fleur" - 中文: "',
        target: str = "花",
        latent: str = "en",
        lens: str = "logit",
        color: str = "prob",
        backend: BackendName = "transformer-lens",
    ) -> None:
        self._models = dict(models or {name: name for name in EMBEDDED})
        self._loaded: dict[str, Backend] = {}  # the models loaded from a name, by dropdown name
        self._backend_name: BackendName = backend
        first = DEFAULT_MODEL if DEFAULT_MODEL in self._models else next(iter(self._models))
        self.prompt = widgets.Textarea(
            prompt, description="prompt", continuous_update=False, layout=widgets.Layout(width="95%", height="4em")
        )
        self.model = widgets.Dropdown(options=list(self._models), value=first, description="model")
        self.lens = widgets.Dropdown(options=list(available_lenses()), value=lens, description="lens")
        self.color = widgets.Dropdown(options=list(COLORS), value=color, description="colour")
        self.target = widgets.Text(target, description="target", continuous_update=False)
        self.latent = widgets.Text(latent, description="latent lang", continuous_update=False)
        self.latent_word = widgets.Text(
            "", description="latent word", placeholder="from the word list", continuous_update=False
        )
        self.status = widgets.HTML()
        self.view = PlotlyView()
        self.exploration: Exploration | None = None
        controls = [self.model, self.lens, self.color, self.target, self.latent, self.latent_word]
        super().__init__([self.prompt, widgets.HBox(controls[:3]), widgets.HBox(controls[3:]), self.status, self.view])
        for control in [self.prompt, *controls]:
            control.observe(self._redraw, names="value")
        self._redraw()

    def backend(self) -> Backend:
        name = cast(str, self.model.value)  # ipywidgets types a value as Any | None; the options are str
        model = self._models[name]
        if isinstance(model, Backend):
            return model
        if name not in self._loaded:
            self._loaded[name] = load(model, backend=self._backend_name)
        return self._loaded[name]

    def _redraw(self, change=None) -> None:
        """Explore the prompt again and re-draw; bad input shows its message and keeps the last grid."""
        self.status.value = "<i>computing…</i>"
        try:
            self.exploration = explore(
                self.backend(),
                self.prompt.value,
                lens=cast(str, self.lens.value),
                color=cast(str, self.color.value),
                target=self.target.value or None,
                latent=self.latent.value.strip(),
                latent_word=self.latent_word.value.strip() or None,
            )
        except PivotlensError as exc:
            self.status.value = f"<span style='color:#b00'>{exc}</span>"
            return
        self.view.show(self.exploration.figure())
        self.status.value = ""
