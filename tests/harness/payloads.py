"""Hostile text the report tests put everywhere a package or a registry supplies text.

Each payload tries to run script (setting ``window.__pwned`` or opening a dialog), to load
something from the network, or to restyle the page. A report renders each as the text it is:
:func:`hostile_source` writes a real build source carrying one payload in the card (body,
heading, table, link, front matter), the description, the contract's field descriptions,
a metric name and a parameter, for the real builder to build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

PAYLOADS: dict[str, str] = {
    "script": "<script>window.__pwned = 'script'; alert('script')</script>",
    "img-onerror": "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
    "javascript-link": "[click me](javascript:window.__pwned='link') <a href=\"javascript:alert('a')\">a</a>",
    "raw-html-block": (
        '<div onmouseover="alert(\'div\')">\n<iframe src="https://example.com/"></iframe>\n'
        '<link rel=stylesheet href="https://example.com/x.css">\n<style>body { display: none }</style>\n</div>'
    ),
    "svg": (
        "<svg onload=\"window.__pwned = 'svg'\"><script>alert('svg')</script><image href=\"https://example.com/i.png\"/>"
        "</svg> ![pixel](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+) ![remote](https://example.com/p.png)"
    ),
    "contract-field": "</td><script>window.__pwned = 'td'</script><td>",
}
# What of each payload must be visible as text on the page (the tag itself, shown, not parsed).
VISIBLE: dict[str, str] = {
    "script": "<script>window.__pwned",
    "img-onerror": "<img src=x onerror=",
    "javascript-link": "javascript:window.__pwned",
    "raw-html-block": "<iframe src=",
    "svg": "<svg onload=",
    "contract-field": "</td><script>",
}
BIDI = "admin\u202egnp.exe"  # a right-to-left override: must be shown as an escape, not obeyed


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def hostile_source(example: Path, dest: Path, payload: str) -> Path:
    """A copy of ``example`` (iris-mlp) with ``payload`` in every text field the build accepts."""
    shutil.copytree(example, dest)
    card = (dest / "MODEL_CARD.md").read_text()
    head, sep, body = card.partition("\n---\n")
    front = f"{head}\nhostile: {json.dumps(payload)}\n{json.dumps('key ' + _one_line(payload))}: x\n"
    body += (
        f"\n## Notes {_one_line(payload)}\n\n{payload}\n\nInline: {_one_line(payload)} and {BIDI}.\n\n"
        f"| column | value |\n|---|---|\n| {_one_line(payload).replace('|', '/')} | 1 |\n\n"
        f"[a link](javascript:alert('link')) and [another](data:text/html,<script>alert(1)</script>)\n"
    )
    (dest / "MODEL_CARD.md").write_text(front + sep + body)
    toml = (dest / "mpkg.toml").read_text()
    old = next(line for line in toml.splitlines() if line.startswith("description"))
    (dest / "mpkg.toml").write_text(toml.replace(old, f"description = {json.dumps(_one_line(payload))}"))
    contract = json.loads((dest / "contract.json").read_text())
    for side in ("inputs", "outputs"):
        for field in contract[side]:
            field["description"] = payload
    (dest / "contract.json").write_text(json.dumps(contract, indent=2))
    metrics = json.loads((dest / "metrics.json").read_text())
    metrics[_one_line(payload)] = 0.5
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2))
    params = (dest / "params.yaml").read_text()
    (dest / "params.yaml").write_text(params + f"{json.dumps(_one_line(payload))}: {json.dumps(payload)}\n")
    return dest


__all__ = ["BIDI", "PAYLOADS", "VISIBLE", "hostile_source"]
