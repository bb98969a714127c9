"""A page looked at in a real browser: Debian's Chromium, headless, takes a screenshot of a local
file, and the PNG is read here (zlib and struct: no imaging library) to tell whether anything
was drawn, and in which colours.

Chromium runs with a profile of its own in a temporary folder, its own ``HOME``, and nothing to
reach: every host name is unresolvable and every connection goes to a closed loopback port, with
its background services (updates, sync, safe browsing) off. The pages it is shown must need
nothing from elsewhere anyway: ``assert_self_contained`` checks that first.

Chromium is installed by ``scripts/test.sh`` (so CI has it); where it cannot be found the
browser checks are skipped, except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser")
WINDOW = (1200, 900)
TIMEOUT = 90.0  # seconds for one screenshot; a first start on a busy machine takes a few
WHITE = b"\xff\xff\xff"

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a container's /dev/shm is small
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves...
    "--proxy-server=127.0.0.1:9",  # ...and any connection at all goes to a closed port here
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",  # one CSS pixel, one PNG pixel
    "--force-color-profile=srgb",  # the page's colours, unchanged, in the PNG
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_or_skip() -> str:
    """The browser; a skip where there is none, a failure where there must be one (CI)."""
    found = find_chromium()
    if found:
        return found
    why = f"no {' or '.join(NAMES)} on PATH (scripts/test.sh installs Debian's chromium)"
    if in_ci():
        pytest.fail(why + "; CI=true: the browser check may not be skipped")
    pytest.skip(why)


# ---- the PNG ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Screenshot:
    width: int
    height: int
    colours: Counter[bytes]  # 3 bytes R, G, B -> how many pixels

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def non_white(self) -> int:
        return self.pixels - self.colours[WHITE]

    def count(self, colour: str) -> int:
        """Pixels of exactly ``colour`` (``#rrggbb``)."""
        return self.colours[bytes.fromhex(colour.removeprefix("#"))]

    def describe(self) -> str:
        top = ", ".join(f"#{c.hex()} {n}" for c, n in self.colours.most_common(6))
        return (
            f"{self.width}x{self.height}, {len(self.colours)} colours, "
            f"{self.non_white} non-white pixels ({100 * self.non_white / self.pixels:.1f} %); "
            f"most: {top}"
        )


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """Byte by byte ``(a + b) % 256``, all at once: 7-bit sums cannot carry into the next byte,
    and each byte's top bit is the exclusive or of the two top bits and the 7-bit sum's."""
    n = len(a)
    low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> bytes:
    n = len(line)
    if kind == 0:
        return bytes(line)
    if kind == 2:  # Up: the most common by far in Chromium's screenshots
        return _add_bytes(bytes(line), prev)
    if kind == 1:  # Sub
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 3:  # Average
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            guess = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + guess) & 0xFF
    else:
        raise AssertionError(f"PNG: unknown row filter {kind}")
    return bytes(line)


def decode_png(data: bytes) -> Screenshot:
    """The pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes); alpha
    is dropped (a screenshot is opaque)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (
        f"PNG: depth {depth}, colour type {colour_type}, interlace {interlace}: not handled"
    )
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    assert len(raw) == height * (stride + 1), "PNG: image data of the wrong length"
    colours: Counter[bytes] = Counter()
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), prev, bpp)
        if bpp == 3:
            colours.update(row[i : i + 3] for i in range(0, stride, 3))
        else:
            colours.update(row[i : i + 3] for i in range(0, stride, 4))
        prev = row
    return Screenshot(width, height, colours)


# ---- the browser --------------------------------------------------------------------------------


def screenshot(
    page: Path, png: Path, window: tuple[int, int] = WINDOW, timeout: float = TIMEOUT
) -> Screenshot:
    """``page`` (a local file) as Chromium draws it in a ``window``-sized viewport, written to
    ``png`` and decoded."""
    browser = chromium_or_skip()
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="stackferry-chromium-") as private:
        home = Path(private)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env |= {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
        }
        argv = [
            browser,
            *FLAGS,
            f"--user-data-dir={home / 'profile'}",
            f"--window-size={window[0]},{window[1]}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: all of it is ended below
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            output = b""
        finally:
            with contextlib.suppress(ProcessLookupError):  # what it left running, or all of it
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = output.decode(errors="replace").strip().splitlines()[-15:]
    what = f"{browser} on {page.name}"
    assert proc.returncode == 0 and png.is_file(), (
        f"{what}: exit {proc.returncode}, no screenshot (timeout {timeout:.0f}s); "
        "its last lines:\n" + "\n".join(log)
    )
    return decode_png(png.read_bytes())


# ---- what the page must be ----------------------------------------------------------------------

ELSEWHERE = re.compile(
    r"""https?://|//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(|\b(src|href|srcset|action|poster)\s*=""",
    re.IGNORECASE,
)


def assert_self_contained(html: str) -> None:
    """Nothing for a browser to fetch: no URL of any host, no linked script, style, font or
    image. (The names in the tests' pages hold no URL, so none may appear at all.)"""
    found = sorted({m.group(0) for m in ELSEWHERE.finditer(html)})
    assert not found, f"the page refers to something elsewhere: {found}"


def bar_areas(html: str) -> dict[str, float]:
    """Colour -> square pixels of the bars of the page's first chart (its first ``<svg>``)."""
    first = re.search(r"<svg\b.*?</svg>", html, re.DOTALL)
    areas: dict[str, float] = {}
    for rect in re.findall(r"<rect\b[^>]*>", first.group(0) if first else ""):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', rect))
        colour = attrs["fill"].lower()
        areas[colour] = areas.get(colour, 0.0) + float(attrs["width"]) * float(attrs["height"])
    return areas


def assert_chart_renders(page: Path, png: Path) -> Screenshot:
    """The usage page, self-contained, drawn by Chromium: a screenshot of the window's size,
    not blank, and the first chart's bars on it, in their colours - each colour with at least
    half the pixels its bars cover (a bar thinner than a pixel is drawn blended, hence only
    colours whose bars cover 400 px or more count)."""
    html = page.read_text()
    assert_self_contained(html)
    wanted = {c: area for c, area in bar_areas(html).items() if area >= 400}
    assert wanted, "the page's first chart has no bar of 400 px or more to look for"
    shot = screenshot(page, png)
    summary = shot.describe()
    assert (shot.width, shot.height) == WINDOW, summary
    assert len(shot.colours) >= 16 and shot.non_white >= 0.01 * shot.pixels, f"blank: {summary}"
    drawn = {c: shot.count(c) for c in wanted}
    missing = {c: f"{drawn[c]} of {a:.0f} px" for c, a in wanted.items() if drawn[c] < 0.5 * a}
    assert not missing, f"bars not drawn: {missing}; {summary}"
    return shot
