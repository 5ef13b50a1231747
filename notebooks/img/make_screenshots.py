"""The explorer screenshots of the README and notebooks/explore.ipynb: one Russian -> Chinese
translation prompt ("облако" -> 云, the task's default source) on both embedded models and the
Chinese cloze prompt of the same concept on Gemma, their last 14 positions, each written as a
standalone page and photographed by headless Chromium.

Usage (about a minute once the models are cached; Chinese glyphs need a CJK font, which `make setup`
installs: fonts-wqy-zenhei): python notebooks/img/make_screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from analyses.pipelines.explore import explore
from probes.backend import load
from probes.inputs.prompts import lens_prompts
from probes.inputs.words import load_cloze, load_concepts

HERE = Path(__file__).resolve().parent
MODELS = ("gemma-3-270m", "smollm2-135m")


def chinese_prompt(task: str):
    cloze = load_cloze() if task == "cloze" else None
    return next(p for p in lens_prompts(task, load_concepts(), "zh", cloze=cloze) if p.concept == "cloud")


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=10000",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )


def photograph(backend, task: str, png: Path) -> None:
    prompt = chinese_prompt(task)
    found = explore(
        backend,
        prompt.text,
        positions=range(-14, 0),
        target=prompt.target_word,
        target_lang=prompt.lang,
        latent_word=prompt.latent_word,
        color="lang",
    )
    fig = found.figure()
    with tempfile.TemporaryDirectory() as folder:
        page = found.write_html(Path(folder) / "page.html")
        screenshot(page, png, int(fig.layout.width) + 20, int(fig.layout.height) + 20)
    print(f"wrote {png}")


def main() -> None:
    for name in MODELS:
        backend = load(name)
        photograph(backend, "translation", HERE / f"explore_zh_{name}.png")
        if name == MODELS[0]:
            photograph(backend, "cloze", HERE / f"explore_zh_cloze_{name}.png")


if __name__ == "__main__":
    main()
