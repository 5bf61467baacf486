"""Where a run's outputs go (JSON, Mermaid, pcapng, SVG, HTML), for `run` and `show`."""

from __future__ import annotations

import json
from pathlib import Path


def output_path(path, name: str, suffix: str, ext: str, many: bool) -> Path:
    """The file an output goes to: PATH itself, or PATH/<scenario><suffix><ext> when
    several runs write outputs of the same kind or PATH is a directory (an existing
    one, or one written with a trailing slash)."""
    target = Path(path)
    if many or target.is_dir() or str(path).endswith("/"):
        target.mkdir(parents=True, exist_ok=True)
        target = target / f"{name}{suffix}{ext}"
    return target


def write_json(result, json_path, many: bool, suffix: str = "") -> None:
    if json_path:
        output_path(json_path, result.scenario.name, suffix, ".json", many).write_text(
            json.dumps(result.to_json(), indent=1) + "\n"
        )


def write_mermaid(res: dict, path, many: bool, suffix: str = "") -> None:
    if path:
        from tcplab.render.export import mermaid

        output_path(path, res["scenario"], suffix, ".mmd", many).write_text(mermaid(res))


def write_pcap(res: dict, path, many: bool, suffix: str = "") -> None:
    if path:
        from tcplab.render.export import pcap

        pcap(res, output_path(path, res["scenario"], suffix, ".pcapng", many))


def write_pictures(res: dict, svg_path, html_path, many: bool, suffix: str = "") -> None:
    from tcplab.render.picture import html_page, svg

    if svg_path:
        output_path(svg_path, res["scenario"], suffix, ".svg", many).write_text(svg(res))
    if html_path:
        output_path(html_path, res["scenario"], suffix, ".html", many).write_text(html_page(res))
