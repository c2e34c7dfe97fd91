"""Input manifests, the label-category file and the worker task templates (bounding boxes, text classification).

Everything that comes from configuration is HTML-escaped before it enters the template: a class name is data,
never markup.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO


def input_manifest(source_refs: Iterable[str]) -> str:
    """JSON Lines, one `{"source-ref": "s3://..."}` per image."""
    return "".join(json.dumps({"source-ref": ref}) + "\n" for ref in source_refs)


class ManifestError(ValueError):
    """A manifest line that cannot be read; the message names the file and the 1-based line."""


def json_lines(lines: Iterable[bytes | str], where: str = "manifest") -> Iterator[tuple[int, dict]]:
    """(1-based line number, object) of every non-blank JSON Lines line, streamed; a line that is not UTF-8, not
    JSON or not an object raises ManifestError naming `where` and the line."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ManifestError(f"{where} line {number}: not UTF-8 ({exc.reason})") from None
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where} line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise ManifestError(f"{where} line {number}: a JSON {type(value).__name__}, not an object")
        yield number, value


def read_manifest(stream: IO[bytes]) -> Iterator[dict]:
    """Lines of a (possibly large) manifest, streamed; blank lines skipped, a bad line named by its number."""
    for _, line in json_lines(stream):
        yield line


def class_labels(names: list[str]) -> str:
    """The LabelCategoryConfigS3Uri file: `{"labels": [{"label": ...}]}`."""
    if not names or any(not isinstance(n, str) or not n.strip() for n in names):
        raise ValueError("class labels must be a non-empty list of non-empty names")
    return json.dumps({"labels": [{"label": n} for n in names]})


def instructions_png(examples: list[tuple[bytes, list[tuple[float, float, float, float]]]], class_name: str) -> bytes:
    """Example images with their reference boxes drawn on, as the notebook's instructions show workers.

    `examples` holds (JPEG bytes, boxes as Open Images fractions xmin, xmax, ymin, ymax).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig = plt.figure(facecolor="white", dpi=100, figsize=(3, 3.5 * max(1, len(examples))))
    fig.suptitle(f"Please draw a box\naround each {class_name}\nlike the examples below.\nThank you!", fontsize=12)
    for i, (jpeg, boxes) in enumerate(examples, start=1):
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        width, height = image.size
        ax = fig.add_subplot(len(examples), 1, i)
        ax.imshow(image)
        for xmin, xmax, ymin, ymax in boxes:
            ax.add_patch(
                plt.Rectangle(
                    (xmin * width, ymin * height),
                    (xmax - xmin) * width,
                    (ymax - ymin) * height,
                    fill=False,
                    lw=3,
                    edgecolor="blue",
                )
            )
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    return buf.getvalue()


def bounding_box_template(class_name: str, instructions: bytes | None = None) -> str:
    """The worker UI (crowd-bounding-box Liquid template) with the class name escaped and the example image inline."""
    name = html.escape(class_name, quote=True)
    picture = ""
    if instructions:
        encoded = base64.b64encode(instructions).decode("ascii")
        picture = f'<img src="data:image/png;base64,{encoded}" style="max-width:100%">'
    header = (
        f"Dear Annotator, please draw a tight box around each {name} you see "
        "(if there are more than 8, draw boxes around at least 8). Thank you!"
    )
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{{{{ task.input.taskObject | grant_read_access }}}}"
    header="{header}"
    labels="{{{{ task.input.labels | to_json | escape }}}}"
  >
    <full-instructions header="Please annotate each {name}.">
      <ol>
        <li><strong>Inspect</strong> the image</li>
        <li><strong>Determine</strong> if the specified label is/are visible in the picture.</li>
        <li><strong>Outline</strong> each instance of the specified label using the provided "Box" tool.</li>
      </ol>
      <ul>
        <li>Boxes should fit tight around each object</li>
        <li>Do not include parts of the object that are overlapping or that cannot be seen.</li>
        <li>Avoid including shadows.</li>
        <li>If the target is off screen, draw the box up to the edge of the image.</li>
      </ul>
    </full-instructions>
    <short-instructions>
      {picture}
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""


def _liquid_safe(value: str) -> str:
    """HTML-escaped, with braces as entities too, so a name can be neither markup nor a Liquid tag (`{{ ... }}`)."""
    return html.escape(value, quote=True).replace("{", "&#123;").replace("}", "&#125;")


def _classification_categories(names: list[str]) -> list[str]:
    """The names, refused unless there are at least two, each non-empty and none repeated (the API reference's rules
    for text and image classification label categories)."""
    if not isinstance(names, list | tuple) or any(not isinstance(n, str) or not n.strip() for n in names):
        raise ValueError(f"label categories must be a list of non-empty names, got {names!r}")
    if len(names) < 2:
        raise ValueError(f"classification needs at least two label categories, got {list(names)!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"label categories must be distinct; repeated: {', '.join(map(repr, repeated))}")
    return list(names)


def label_categories(names: list[str]) -> str:
    """The LabelCategoryConfigS3Uri file for a classification job, in the documented format
    (`{"document-version": "2018-11-28", "labels": [{"label": ...}]}`, botocore's CreateLabelingJob reference):
    `class_labels` leaves out the document version and accepts one label, which text classification refuses."""
    categories = _classification_categories(names)
    return json.dumps({"document-version": "2018-11-28", "labels": [{"label": n} for n in categories]})


def text_classification_template(categories: list[str], instructions: str) -> str:
    """The worker UI for single-label text classification (the seed's `crowd-classifier` Liquid template).

    The choices come from the label-category file at run time (`task.input.labels`); `categories` (the same names,
    in the same order) are listed again in the short instructions, and `instructions` is the question workers see.
    Both are escaped: a class name is data, never markup.
    """
    _classification_categories(categories)
    if not isinstance(instructions, str) or not instructions.strip():
        raise ValueError("text classification needs instructions (the question workers answer)")
    header = _liquid_safe(instructions.strip())
    choices = "".join(f"<li>{_liquid_safe(c)}</li>" for c in categories)
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier
    name="crowd-classifier"
    categories="{{{{ task.input.labels | to_json | escape }}}}"
    header="{header}"
  >
    <classification-target>{{{{ task.input.taskObject }}}}</classification-target>
    <full-instructions header="Classifier instructions">
      <ol>
        <li><strong>Read</strong> the text carefully.</li>
        <li><strong>Choose</strong> the one category that fits it best.</li>
      </ol>
    </full-instructions>
    <short-instructions>
      <p>{header}</p>
      <ul>{choices}</ul>
    </short-instructions>
  </crowd-classifier>
</crowd-form>
"""
