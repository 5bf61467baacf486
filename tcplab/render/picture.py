"""The ladder as a picture for a classroom: an SVG drawn by hand as XML text, and a
self-contained HTML page embedding it with the checks as a table. Pure: the result
JSON (the contract) in, text out, so a saved run draws exactly like a live one.

Layout: one row per event, in time order, under three columns: client | network
(router) | server. Rows are not to scale: the step between two rows grows with the
logarithm of the time between them, so a 1 ms handshake and a 1 s backoff both stay
readable, and silences longer than BREAK_AFTER are drawn as a visible break with
their length written in it (a 60 s TIME_WAIT does not stretch the picture).
Sequence numbers are relative to each side's ISN, as in the terminal ladder.
"""

from __future__ import annotations

import html
import math
import re

WIDTH = 1040
X_TIME = 70  # right edge of the time labels
X = {"client": 300, "router": 520, "server": 740}
TOP = 96  # below the title block
ROW = 22
SLANT = 6  # a delivered arrow lands this much lower than it left: a ladder, not a table
BREAK_AFTER = 2.5  # seconds of silence shown as a break instead of a long step
BREAK_H = 40
CHECK_ROW = 16
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"

COLOUR = {"delivered": "#2e7d32", "dropped": "#c62828", "delayed": "#d97800"}
OTHER = "#7b1fa2"  # fates this module does not know (duplicated, forged, ...): drawn, marked
VERDICT = {"pass": "#2e7d32", "fail": "#c62828", "error": "#b26a00"}
SIDE_COLOUR = {"client": "#00838f", "server": "#8e24aa", "router": "#555555"}
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def esc(text) -> str:
    """Text safe inside an XML/HTML element or a quoted attribute. Control characters
    are not allowed in XML even as references, so they become U+FFFD."""
    return html.escape(_BAD_XML.sub("\ufffd", str(text)), quote=True)


# -- what goes on which row ---------------------------------------------------------------


def _rows(res: dict) -> list[tuple[float, str, dict]]:
    """(t, what, event) in drawing order: a segment when it reached the router, a held
    segment again when the router released it, a state change when it happened, a call
    when it returned (and also when it started, if it blocked for a while)."""
    rows = []
    for e in res.get("events", []):
        kind = e.get("kind")
        if kind == "segment":
            rows.append((e["t"], "segment", e))
            if e.get("fate") == "delayed" and e.get("t_out") is not None:
                rows.append((e["t_out"], "release", e))
        elif kind == "state":
            rows.append((e["t"], "state", e))
        elif kind == "app":
            end = e.get("t_end")
            if end is None or end - e["t"] >= 0.05:
                rows.append((e["t"], "call-start", e))
            if end is not None:
                rows.append((end, "call", e))
    order = {"segment": 0, "release": 0, "state": 1, "call-start": 2, "call": 2}
    return sorted(rows, key=lambda r: (r[0], order[r[1]]))


def _layout(rows) -> tuple[list[float], list[tuple[float, float, float]], float]:
    """y of each row, the breaks (y, seconds skipped, y after) and the bottom."""
    ys, breaks, y, last = [], [], TOP, None
    for t, _what, _e in rows:
        if last is not None:
            gap = t - last
            if gap >= BREAK_AFTER:
                breaks.append((y + ROW / 2, gap, y + ROW / 2 + BREAK_H))
                y += BREAK_H
            elif gap > 0.002:
                y += min(40.0, 9.0 * math.log10(gap / 0.002))
            y += ROW
        ys.append(y)
        last = t if last is None else max(last, t)
    return ys, breaks, y + ROW


# -- labels ---------------------------------------------------------------------------------


def _relative(res: dict) -> dict[int, tuple[str, str]]:
    """id(event) -> (seq, ack) shown relative to each side's ISN (its first SYN); a
    number whose ISN this run never saw stays absolute."""
    isn: dict[tuple, int] = {}
    shown = {}
    for e in res.get("events", []):
        if e.get("kind") != "segment":
            continue
        me = (e.get("conn"), e.get("from"))
        other = (e.get("conn"), "server" if e.get("from") == "client" else "client")
        if "S" in e.get("flags", ""):
            isn.setdefault(me, e.get("seq", 0))
        seq = e.get("seq", 0)
        seq = (seq - isn[me]) & 0xFFFFFFFF if me in isn else seq
        ack = e.get("ack", 0)
        ack = (ack - isn[other]) & 0xFFFFFFFF if other in isn else ack
        shown[id(e)] = (str(seq), str(ack))
    return shown


def _segment_label(e: dict, rel: tuple[str, str]) -> str:
    flags = e.get("flags", "")
    text = f"{e.get('name', '?')} #{e.get('nth', '?')}"
    if e.get("retransmission"):
        text += "↻"
    text += f" [{flags}] seq={rel[0]}"
    if "A" in flags:
        text += f" ack={rel[1]}"
    if e.get("len"):
        text += f" len={e['len']}"
    return text


def _call_text(e: dict, end: bool) -> str:
    arg = e.get("arg")
    shown = (
        "" if arg is None else (f"{arg[0]}:{arg[1]}" if isinstance(arg, list) and len(arg) == 2 else str(arg))
    )
    if not end:
        return f"{e.get('call', '?')}({shown}) …" + ("" if e.get("t_end") is not None else " never returned")
    took = e["t_end"] - e["t"]
    return f"{e.get('call', '?')}() → {e.get('result') or 'blocked'} {took:.3f}s"


# -- drawing --------------------------------------------------------------------------------


def _text(x, y, s, cls, anchor="start", fill=None, extra="") -> str:
    colour = f' fill="{fill}"' if fill else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}"{colour}{extra}>{esc(s)}</text>'
    )


def _arrowhead(x, y, direction, colour) -> str:
    d = 9 * direction
    return (
        f'<polygon class="head" points="{x:.1f},{y:.1f} {x - d:.1f},{y - 4.5:.1f} '
        f'{x - d:.1f},{y + 4.5:.1f}" fill="{colour}"/>'
    )


def _line(x1, y1, x2, y2, colour, dashed=False, cls="shaft") -> str:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    return (
        f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{colour}" stroke-width="2"{dash}/>'
    )


def _segment(e: dict, y: float, y_out: float | None, rel) -> str:
    fate = e.get("fate", "?")
    colour = COLOUR.get(fate, OTHER)
    src = e.get("from") if e.get("from") in X else "router"
    dst = {"client": "server", "server": "client"}.get(src, "client")
    xs, xr, xd = X[src], X["router"], X[dst]
    way = 1 if xd > xs else -1
    label = _segment_label(e, rel)
    if fate not in COLOUR:
        label += f" ({fate})"
    why = f"t={e.get('t', 0):.6f}s {label} {fate}" + (f" by {e['fault']}" if e.get("fault") else "")
    parts = [
        f'<g class="segment fate-{esc(fate)}" data-name="{esc(e.get("name", ""))}" '
        f'data-nth="{esc(e.get("nth", ""))}" data-from="{esc(src)}">',
        f"<title>{esc(why)}</title>",
    ]
    if fate == "dropped" or (fate not in ("delivered", "delayed") and e.get("t_out") is None):
        # It died in the router: the arrow stops at the router's column, with the mark.
        end = xr - way * 6
        parts.append(_line(xs, y, end, y + SLANT / 2, colour))
        if fate == "dropped":
            parts.append(
                f'<path class="drop-mark" d="M{xr - 7} {y - 4} l14 14 m0 -14 l-14 14"'
                f' stroke="{colour}" stroke-width="3"/>'
            )
            parts.append(
                _text(xr + way * 12, y + 8, "dropped", "mark", "start" if way > 0 else "end", colour)
            )
        else:
            parts.append(
                _text(xr + way * 12, y + 8, f"? {fate}", "mark", "start" if way > 0 else "end", colour)
            )
        parts.append(_text((xs + xr) / 2, y - 4, label, "seg", "middle", colour))
    elif fate == "delayed" and y_out is not None:
        # Into the router, held (a dashed stretch down its column), then out.
        held = f"{e.get('name', '?')} #{e.get('nth', '?')} held {e['t_out'] - e['t']:.3f} s"
        parts.append(_line(xs, y, xr, y + SLANT / 2, colour))
        parts.append(_line(xr, y + SLANT / 2, xr, y_out, colour, dashed=True, cls="hold"))
        parts.append(_line(xr, y_out, xd - way * 9, y_out + SLANT / 2, colour))
        parts.append(_arrowhead(xd, y_out + SLANT / 2, way, colour))
        parts.append(_text((xs + xr) / 2, y - 4, label, "seg", "middle", colour))
        parts.append(_text((xr + xd) / 2, y_out - 4, held, "mark", "middle", colour))
    else:
        parts.append(_line(xs, y, xd - way * 9, y + SLANT, colour, dashed=fate not in COLOUR))
        parts.append(_arrowhead(xd, y + SLANT, way, colour))
        parts.append(_text(xr, y - 4, label, "seg", "middle", colour))
    parts.append("</g>")
    return "".join(parts)


def _state(e: dict, y: float) -> str:
    host = e.get("host", "router")
    x = X.get(host, X["router"])
    old, new = e.get("from", ""), e.get("to", "")
    text = new if old in ("", "CLOSE") else f"{old}→{new}"
    w = 7.0 * len(text) + 12
    italic = ' font-style="italic"' if e.get("source") == "inet_diag" else ""
    return (
        f'<g class="state" data-host="{esc(host)}"><title>{esc(text)} '
        f"(seen by {esc(e.get('source', '?'))})</title>"
        f'<rect x="{x - w / 2:.1f}" y="{y - 12:.1f}" width="{w:.1f}" height="16" rx="8" '
        f'fill="#ffffff" stroke="{SIDE_COLOUR.get(host, "#555")}"/>'
        + _text(x, y, text, "state", "middle", extra=italic)
        + "</g>"
    )


def _call(e: dict, y: float, end: bool) -> str:
    host = e.get("host", "client")
    x, anchor = (X["client"] - 10, "end") if host == "client" else (X["server"] + 10, "start")
    ok = e.get("result") == "ok"
    fill = "#777777" if not end else ("#2e7d32" if ok else "#c62828")
    return (
        f'<g class="call" data-host="{esc(host)}" data-call="{esc(e.get("call", ""))}">'
        + _text(x, y, _call_text(e, end), "call", anchor, fill)
        + "</g>"
    )


def _break(y: float, gap: float, y_after: float) -> str:
    """A torn band across the lifelines: time skipped, not drawn to scale."""
    mid = (y + y_after) / 2
    zig = " ".join(
        f"{x},{mid - 5 if i % 2 else mid + 5}" for i, x in enumerate(range(X_TIME + 10, WIDTH - 10, 12))
    )
    return (
        f'<g class="time-break"><rect x="0" y="{y + 4:.1f}" width="{WIDTH}" '
        f'height="{y_after - y - 8:.1f}" fill="#ffffff"/>'
        f'<polyline points="{zig}" fill="none" stroke="#9e9e9e" stroke-width="1.5"/>'
        f'<rect x="{X["router"] - 70}" y="{mid - 9:.1f}" width="140" height="18" '
        f'fill="#ffffff"/>'
        + _text(X["router"], mid + 4, f"… {gap:.1f} s later …", "break", "middle", "#616161")
        + "</g>"
    )


def _check_text(c: dict) -> str:
    from tcplab.core.check.base import Check
    from tcplab.render.live import check_line

    check = Check(
        **{
            k: c[k]
            for k in ("name", "passed", "expected", "actual", "tolerance", "evidence", "line")
            if k in c
        },
        one_sided=c.get("window") == "late",
        judged=c.get("judged", True),
        early=c.get("early"),
    )
    return check_line(check).plain.strip()


def svg(res: dict) -> str:
    """The ladder of one run as an SVG document."""
    rows = _rows(res)
    ys, breaks, bottom = _layout(rows)
    rel = _relative(res)
    release_y = {id(e): y for (t, what, e), y in zip(rows, ys) if what == "release"}
    checks = res.get("checks", [])
    lines = [line for c in checks for line in _check_text(c).split("\n")]
    extra = res.get("errors", []) + res.get("notes", [])
    height = int(bottom + 40 + CHECK_ROW * (len(lines) + len(extra) + 1))
    verdict = res.get("verdict", "?")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tcplab-ladder" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" '
        f'font-size="12">',
        "<style>.seg,.mark{font-size:11px}.call{font-size:11px}.state{font-size:11px;"
        "fill:#222}.t{font-size:10px;fill:#777}.chk{font-size:11px}"
        ".title{font-size:17px;font-weight:bold}.sub{font-size:11px;fill:#555}"
        ".col{font-size:13px;font-weight:bold}.break{font-size:11px}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    claims = ", ".join(res.get("claims") or []) or "none"
    out.append(
        _text(
            12,
            24,
            f"{res.get('scenario', '?')} — {verdict.upper()}",
            "title",
            fill=VERDICT.get(verdict, "#333"),
        )
    )
    out.append(
        _text(
            12,
            42,
            f"claims {claims} · {res.get('file', '')} · kernel "
            f"{res.get('kernel', '?')} · {res.get('duration', 0):.1f} s",
            "sub",
        )
    )
    out.append(
        _text(
            12,
            57,
            "seq/ack relative to each side's ISN · rows in time order, "
            "not to scale; long silences drawn as breaks",
            "sub",
        )
    )
    for host, x in X.items():
        name = "network (router)" if host == "router" else host
        out.append(_text(x, TOP - 18, name, "col", "middle", SIDE_COLOUR[host]))
        out.append(
            f'<line class="lifeline" x1="{x}" y1="{TOP - 10}" x2="{x}" y2="{bottom}" '
            f'stroke="#bdbdbd" stroke-width="{1 if host == "router" else 2}"'
            + (' stroke-dasharray="3 3"' if host == "router" else "")
            + "/>"
        )
    for y, gap, y_after in breaks:
        out.append(_break(y, gap, y_after))
    shown_t = None
    for (t, what, e), y in zip(rows, ys):
        if shown_t is None or abs(t - shown_t) >= 0.001:
            out.append(_text(X_TIME, y + 4, f"{t:.3f} s", "t", "end"))
            shown_t = t
        if what == "segment":
            out.append(_segment(e, y, release_y.get(id(e)), rel.get(id(e), ("?", "?"))))
        elif what == "state":
            out.append(_state(e, y))
        elif what in ("call", "call-start"):
            out.append(_call(e, y, what == "call"))
    y = bottom + 24
    out.append(
        _text(
            12,
            y,
            f"checks: {sum(c.get('passed', False) for c in checks)} of {len(checks)} passed",
            "col",
            fill=VERDICT.get(verdict, "#333"),
        )
    )
    out.append('<g class="checks">')
    for line in lines:
        y += CHECK_ROW
        passed = not line.startswith("✗")
        fill = "#2e7d32" if line.startswith("✓") else ("#c62828" if not passed else "#555")
        out.append(_text(20, y, line, "chk", fill=fill, extra=f' font-family="{MONO}"'))
    for text in extra:
        y += CHECK_ROW
        out.append(_text(20, y, text, "chk", fill="#b26a00"))
    out.append("</g></svg>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(out) + "\n"


def html_page(res: dict) -> str:
    """A page that needs nothing else: the SVG inline, the checks as a table, errors and
    notes. No scripts, no external URLs (it opens offline, and in a mail attachment)."""
    from tcplab.core.check.base import MODEL_SLOP

    verdict = res.get("verdict", "?")
    picture = svg(res).split("\n", 1)[1]  # no XML declaration inside HTML
    rows = []
    for c in res.get("checks", []):
        ok = c.get("passed")
        tol = c.get("tolerance")
        window = (
            ""
            if tol is None
            else (
                f"-{MODEL_SLOP * 1000:.0f} ms/+{tol:.3f} s" if c.get("window") == "late" else f"± {tol:.3f} s"
            )
        )
        rows.append(
            f'<tr class="{"pass" if ok else "fail"}"><td>{"✓" if ok else "✗"}</td>'
            f"<td>{esc(c.get('name', ''))}</td><td>{esc(c.get('expected', ''))}</td>"
            f"<td>{esc(c.get('actual', ''))}</td><td>{esc(window)}</td>"
            f'<td class="proof">{esc(c.get("evidence", ""))}</td></tr>'
        )
    errors = "".join(f"<li>{esc(e)}</li>" for e in res.get("errors", []))
    notes = "".join(f"<li>{esc(n)}</li>" for n in res.get("notes", []))
    title = f"{res.get('scenario', '?')}: {verdict}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · tcplab</title>
<style>
body {{ font-family: {FONT}; margin: 16px; color: #222; background: #fff; }}
table {{ border-collapse: collapse; font-size: 12px; margin-top: 12px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }}
tr.pass td:first-child {{ color: #2e7d32; }} tr.fail td {{ color: #c62828; }}
td.proof {{ font-family: {MONO}; font-size: 11px; color: #666; }}
</style></head>
<body>
{picture}
<table><thead><tr><th></th><th>check</th><th>expected</th><th>actual</th><th>tolerance</th>
<th>proof</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table>
{f'<h2>errors</h2><ul class="errors">{errors}</ul>' if errors else ""}
{f'<h2>notes</h2><ul class="notes">{notes}</ul>' if notes else ""}
</body></html>
"""
