"""The HTML report in a real browser (headless Chromium, driven by Playwright): flame graphs zoom and
search, tables sort, the page runs without a script error and needs no network.

Screenshots go to $VPROBE_TEST_ARTIFACTS (a folder outside the repository),
else to pytest's temporary folder; each test names the file it saved.
Skipped, saying why, where Chromium or Playwright is not installed (.ci/run
installs both: Debian's chromium, PyPI's playwright; Playwright's own browser
download is not used).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from report_html import flame_trees
from vprobe_tools.commands import vprobe

COOKBOOK = Path(__file__).parent.parent / "cookbook"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What a test browser must not do: reach the network, update itself, sync, use a GPU or a sandbox
# (the sandbox needs privileges a CI container does not give).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install playwright)"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = os.environ.get("VPROBE_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("report-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(5000)  # a missing element fails fast
        yield context
        context.close()


def report_of(script: Path, folder: Path, seconds: str = "3") -> Path:
    out = folder / (script.stem + ".html")
    result = CliRunner().invoke(vprobe.command, ["-d", seconds, "--html", str(out), str(script)])
    assert result.exit_code == 0, result.stderr
    return out


class Page:
    """A report open in the browser, with every script error and network request it makes kept."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.as_uri()
        self.page.goto(self.url)

    def close(self) -> None:
        assert self.errors == []
        assert self.requests == [self.url]  # self-contained: nothing fetched but the page
        self.page.close()


@pytest.fixture(scope="module")
def pagefault_report(tmp_path_factory) -> Path:
    return report_of(COOKBOOK / "pagefault-stacks.emt", tmp_path_factory.mktemp("pf"))


def frames(page) -> list[dict]:
    return page.eval_on_selector_all(".flame g.frame", """els => els.map(g => ({
        name: g.dataset.name, depth: +g.dataset.depth, count: +g.dataset.count,
        width: +g.querySelector('rect').getAttribute('width'), cls: g.getAttribute('class')}))""")


def partial(tree: dict):
    """(depth, node) of every frame that holds only part of the graph's samples."""
    def walk(node: dict, depth: int):
        for child in node["c"]:
            if child["v"] < tree["v"]:
                yield depth + 1, child
            yield from walk(child, depth + 1)
    return walk(tree, 0)


def nodes(tree: dict) -> int:
    return 1 + sum(nodes(c) for c in tree["c"])


def test_a_flame_graph_frame_zooms_when_clicked_and_search_highlights(browser, pagefault_report, artifacts):
    (tree,) = flame_trees(pagefault_report.read_text())
    view = Page(browser, pagefault_report)
    page = view.page
    drawn = frames(page)
    assert len(drawn) == nodes(tree)  # every frame is wide enough to draw at this width
    width = float(page.get_attribute(".flame-canvas svg", "width"))
    (root,) = [f for f in drawn if f["depth"] == 0]
    assert root["count"] == tree["v"] and abs(root["width"] - width) < 1
    page.screenshot(path=str(artifacts / "pagefault-stacks-report.png"), full_page=True)

    # Zoom into the widest frame that is not the whole graph (its callers all are).
    depth, target = max(partial(tree), key=lambda dn: dn[1]["v"])
    page.locator(f'.flame g.frame[data-depth="{depth}"][data-name="{target["n"]}"]').first.click()
    assert page.get_attribute(".flame", "data-focus") == target["n"]
    zoomed = frames(page)
    (focus,) = [f for f in zoomed if f["depth"] == depth]
    assert focus["name"] == target["n"] and abs(focus["width"] - width) < 1  # it spans the graph now
    assert [f["depth"] for f in zoomed if "ancestor" in f["cls"]] == list(range(depth))  # its callers, greyed
    assert len(zoomed) == nodes(target) + depth
    page.locator(".flame").first.screenshot(path=str(artifacts / "pagefault-stacks-flame-zoomed.png"))

    page.hover(f'.flame g.frame[data-depth="{depth}"]')
    assert page.text_content(".flame-detail").startswith(f"{target['n']}: {target['v']} sample")

    page.click(".flame-reset")
    assert page.get_attribute(".flame", "data-focus") == "all" and len(frames(page)) == nodes(tree)

    name = target["n"]
    page.fill(".flame-search", name)
    matched = [f for f in frames(page) if "match" in f["cls"]]
    assert matched and all(name.lower() in f["name"].lower() for f in matched)
    assert page.text_content(".flame-matched").startswith("matched ")
    view.close()


def test_clicking_a_header_sorts_the_table(browser, pagefault_report, artifacts):
    view = Page(browser, pagefault_report)
    page = view.page
    table = page.locator("table.aggr").first

    def column(n: int) -> list[str]:
        return table.locator(f"tbody tr td:nth-child({n})").evaluate_all("tds => tds.map(td => td.dataset.sort)")

    keys = column(1)
    key_header = table.locator("th").first  # the stack key, named from the script: `stack`
    assert key_header.text_content() == "stack"
    key_header.click()
    assert column(1) == sorted(keys) != keys
    assert key_header.get_attribute("aria-sort") == "ascending"
    key_header.click()
    assert column(1) == sorted(keys, reverse=True)
    table.locator("th", has_text="count").click()
    counts = [int(c) for c in column(2)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]  # largest first, as -a

    probes = page.locator("table.probes")
    probes.locator("th", has_text="fired").click()
    fired = probes.locator("tbody tr td:nth-child(3)").evaluate_all("tds => tds.map(td => +td.dataset.sort)")
    assert fired == sorted(fired, reverse=True) and fired[0] > 0
    page.screenshot(path=str(artifacts / "pagefault-stacks-sorted.png"))
    view.close()


def test_a_latency_histogram_is_a_bar_chart_with_its_percentiles(browser, tmp_path, artifacts):
    report = report_of(COOKBOOK / "disk-latency.emt", tmp_path)
    view = Page(browser, report)
    page = view.page
    chart = page.locator(".epoch:not([hidden]) svg.histogram-chart").first
    counts = chart.locator("g.bucket").evaluate_all("gs => gs.map(g => +g.dataset.count)")
    caption = page.locator(".epoch:not([hidden]) .histogram .table-caption").first.text_content()
    assert len(counts) > 1 and caption.startswith(f"count {sum(counts)} ")
    widths = chart.locator("rect.bar").evaluate_all("rs => rs.map(r => r.getBBox().width)")
    assert max(widths) == 400 and widths[counts.index(max(counts))] == 400  # the fullest bucket is the longest
    assert sorted(chart.locator("tspan.pct").all_text_contents()) == ["p50", "p90", "p99"]
    page.select_option("select.epoch-select >> nth=1", index=1)  # an earlier epoch of the histogram
    shown = page.locator(".aggregate").nth(1).locator(".epoch:not([hidden])")
    assert shown.count() == 1 and shown.get_attribute("data-epoch") != "3"
    page.screenshot(path=str(artifacts / "disk-latency-histogram.png"), full_page=True)
    view.close()
