"""The classroom pictures of a real run (--svg, --html), read back by their consumer: a
browser. Headless Chromium renders the SVG and the HTML page to PNG screenshots, and the
PNGs (decoded here with zlib, no imaging library) must show the ladder: grey lifelines,
green delivered arrows spanning client to server, the red dropped segment stopping in
the network, the amber held one waiting in the router's column.

Chromium runs in a network namespace of its own with no interface but a down
loopback (unshare --net), so it cannot reach anything, and with its background
networking switched off besides."""

import json
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [
    ROOT / "scenarios" / "handshake" / f"{name}.yaml" for name in ("ack-lost-then-data", "delay-synack")
]
WIDTH, HEIGHT = 1100, 1300
GREEN, RED, AMBER, GREY = (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0xD9, 0x78, 0x00), (0xBD, 0xBD, 0xBD)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    reason = "chromium is not installed (scripts/setup.sh --test installs it)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}: CI must run this check, not skip it", pytrace=False)
    pytest.skip(reason)


def screenshot(browser: str, page: Path, png: Path, tmp: Path) -> None:
    offline = ["unshare", "--net"] if shutil.which("unshare") else []
    cmd = [
        *offline,
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=socks5://127.0.0.1:9",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)}
    )
    assert png.exists(), f"no screenshot: {proc.returncode}\n{proc.stderr[-2000:]}"


def decode_png(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """Width, height and rows of RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG
    (what Chromium writes), with the five scanline filters undone (PNG spec, 9.2)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _compression, _filter, interlace = ihdr
    assert depth == 8 and colour in (2, 6) and interlace == 0, ihdr
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype in (3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if ftype == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[x : x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def where(rows, colour, slack=24) -> list[tuple[int, int]]:
    """(x, y) of the pixels within `slack` (sum of channel differences) of a colour."""
    return [
        (x, y)
        for y, row in enumerate(rows)
        for x, px in enumerate(row)
        if abs(px[0] - colour[0]) + abs(px[1] - colour[1]) + abs(px[2] - colour[2]) <= slack
    ]


def lifelines(rows) -> tuple[int, int, int]:
    """x of the client and server lifelines (solid grey columns, found in the image,
    not taken from the renderer) and the middle between them, where the router is."""
    counts: dict[int, int] = {}
    for x, _y in where(rows, GREY, slack=6):
        counts[x] = counts.get(x, 0) + 1
    solid = sorted(x for x, n in counts.items() if n >= 150)
    assert solid, "no lifeline in the screenshot"
    left, right = solid[0], solid[-1]
    assert right - left > 200, solid
    return left, right, (left + right) // 2


def check_ladder(png: Path, dropped: bool, held: bool) -> None:
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    ink = sum(1 for row in rows for px in row if sum(px) < 720)
    assert ink > 0.02 * width * height, f"an almost blank page: {ink} pixels of ink"
    client, server, router = lifelines(rows)

    green = where(rows, GREEN)
    assert len(green) > 300
    # Delivered arrows run the whole way: green at both lifelines' inner sides.
    assert any(client < x < client + 40 for x, _ in green)
    assert any(server - 40 < x < server for x, _ in green)

    red = [(x, y) for x, y in where(rows, RED) if x > client]  # the drawing, not the text
    if dropped:
        assert len(red) > 50, "no dropped segment drawn"
        # It starts at the client and dies in the network: nothing red beyond the
        # router's column but the word "dropped" just after the mark.
        assert min(x for x, _ in red) < client + 30
        assert max(x for x, _ in red) < router + 90 < server
    else:
        assert red == []
    amber = where(rows, AMBER)
    if held:
        # Held in the router: an amber stretch down the router's column.
        column = sorted({y for x, y in amber if abs(x - router) <= 2})
        assert column and column[-1] - column[0] > 60, "no hold drawn in the router"
        assert any(client < x < client + 40 for x, _ in amber)  # then on to the client
    else:
        assert amber == []


def test_svg_and_html_of_a_real_run_render_in_a_browser(tmp_path):
    browser = chromium()
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcplab",
            "run",
            "--no-color",
            "--jobs",
            "2",
            "--json",
            str(out),
            "--svg",
            str(out),
            "--html",
            str(out),
            *map(str, SCENARIOS),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    for name, dropped, held in (("ack-lost-then-data", True, False), ("delay-synack", False, True)):
        res = json.loads((out / f"{name}.json").read_text())
        segments = [e for e in res["events"] if e["kind"] == "segment"]
        picture = (out / f"{name}.svg").read_text()
        root = ET.fromstring(picture.encode())
        drawn = [
            g for g in root.iter("{http://www.w3.org/2000/svg}g") if "segment" in g.get("class", "").split()
        ]
        assert [(g.get("data-name"), int(g.get("data-nth"))) for g in drawn] == [
            (e["name"], e["nth"]) for e in segments
        ]
        assert any(e["fate"] == "dropped" for e in segments) == dropped
        assert any(e["fate"] == "delayed" for e in segments) == held

        # `show` draws the saved run exactly as the live run did.
        again = tmp_path / f"{name}.again.svg"
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "tcplab",
                "show",
                "--no-color",
                "--svg",
                str(again),
                str(out / f"{name}.json"),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert again.read_text() == picture

        for page in (out / f"{name}.html", out / f"{name}.svg"):
            png = tmp_path / f"{page.name}.png"
            screenshot(browser, page, png, tmp_path)
            check_ladder(png, dropped, held)
