"""What every report shares (one home): formatting and escaping for HTML, tables, figures, the page shell, PNGs drawn
with matplotlib, and writing `report.json`, the PNGs and `report.html`.

`groundtruth.report` (the experiment) and `groundtruth.active_learning_report` (the loop) hold only their own
numbers, plots and page content. Same report in, byte-identical files out: no clock is read, PNGs carry no
timestamp metadata.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child { text-align: left; font-weight: 600; }
.side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.side > section { flex: 1 1 480px; }
.arn { font-family: monospace; font-size: 0.8em; word-break: break-all; }
.note { color: #555; font-size: 0.9em; max-width: 60em; } .warn { color: #a40; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
"""


def fmt(value: Any, spec: str = "") -> str:
    """A value as text: None is a dash, numbers take `spec`."""
    if value is None:
        return "—"
    if isinstance(value, float | int) and not isinstance(value, bool) and spec:
        return format(value, spec)
    return str(value)


def esc(value: Any, spec: str = "") -> str:
    """Format, then escape: every value that reaches the HTML goes through here."""
    return html.escape(fmt(value, spec), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table from already-escaped cells; headers are escaped here."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    cls_attr = f' class="{html.escape(cls)}"' if cls else ""
    return f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figures(captions: Mapping[str, str], images: Mapping[str, bytes]) -> str:
    """Each PNG inline (a data URI) with its caption, in the order of `captions`."""
    return "".join(
        f'<figure><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{base64.b64encode(images[name]).decode("ascii")}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in captions.items()
        if name in images
    )


def page(title: str, parts: Iterable[str]) -> str:
    """A self-contained HTML page: the shared CSS inline, `title` escaped, `parts` (already escaped) as the body."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    return "\n".join([*head, *parts, "</body></html>", ""])


def empty(ax, text: str) -> None:
    """An axes that says why it has nothing to show."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def render_pngs(drawers: Mapping[str, tuple[Callable[[Any], None], float]]) -> dict[str, bytes]:
    """{name: PNG bytes}: each drawer draws onto an 11-inch-wide figure of its height (inches)."""
    import io

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pngs = {}
    with matplotlib.rc_context({"font.size": 9, "axes.titlesize": 10}):
        for name, (draw, height) in drawers.items():
            fig = Figure(figsize=(11, height), dpi=100, facecolor="white")
            FigureCanvasAgg(fig)
            draw(fig)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", metadata={"Software": None})
            pngs[name] = buf.getvalue()
    return pngs


def write_report_files(
    report: Mapping[str, Any], out_dir: Path, pngs: Mapping[str, bytes], html_page: Callable[[Mapping[str, bytes]], str]
) -> dict[str, Path]:
    """Write `report.json`, `<name>.png` for each PNG and `report.html` (built from the PNGs); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"json": out_dir / "report.json"}
    paths["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    for name, png in pngs.items():
        paths[name] = out_dir / f"{name}.png"
        paths[name].write_bytes(png)
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(html_page(pngs), encoding="utf-8")
    return paths
