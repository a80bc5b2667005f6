"""End to end in a real browser: headless Chromium (the distribution's package, which `.ci/run`
installs) drives the real app the way a user does, on a laptop-sized window (1280 x 800): load the
embedded model, erase "star" with AP on a small step budget while watching progress, land on the
Results view when it finishes (base and erased side by side in one image, the search heatmap, a
spectrum of the run and a drill-down from one of its concepts to its pictures), erase star again with
ESD and compare both runs, compute a spectrum and download its CSV. Screenshots go to
$CSE_SCREENSHOTS when set (the README's come from here)."""

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.app_server import AppServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    if CHROMIUM is None:
        message = "no system Chromium: `apt-get install chromium` (as .ci/run does) to run the browser test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    server = AppServer(tmp_path_factory.mktemp("e2e") / "jobs").start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url)
        yield page
        browser.close()
    server.kill()


# Gradio's progress element: the status tracker of an output while its call runs (hidden otherwise)
PROGRESS = ".wrap:not(.hide) .progress-text"
LONG_ACTIONS = ["model-info", "generate-images", "results-grid", "results-drill", "compare-grid", "erase-files"]


def _watch_progress(page) -> None:
    """Record, for each long action's output, whether its progress element ever showed (a quick call may
    show it for a fraction of a second, so a watcher records it rather than a poll)."""
    page.evaluate("""([ids, progress]) => { window.__progress = Object.fromEntries(ids.map(i => [i, false]));
        const check = () => { for (const i of ids)
            if (document.querySelector(`#${i} ${progress}`)) window.__progress[i] = true; };
        new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true}); }""",
                  [LONG_ACTIONS, PROGRESS])


def _showed_progress(page, elem_id: str) -> None:
    assert page.evaluate(f"window.__progress['{elem_id}']"), f"no progress shown on #{elem_id} during the call"


def _shot(page, name: str, full_page: bool = True) -> None:
    folder = os.environ.get("CSE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


def _image(page, elem_id: str) -> np.ndarray:
    """The image an gr.Image shows, fetched the way the browser does."""
    page.wait_for_function(f"document.querySelector('#{elem_id} img') && document.querySelector('#{elem_id} img').complete")
    src = page.locator(f"#{elem_id} img").first.get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")).astype(float)


def _no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the page scrolls sideways"


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")  # commit the value (Gradio updates on blur)


def _choose(page, elem_id: str, value: str) -> None:
    """Type into a Gradio dropdown and commit it (job pickers accept the typed id)."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    box.press("Enter")
    page.keyboard.press("Escape")


def _choose_option(page, elem_id: str, label_start: str) -> None:
    """Open a Gradio dropdown and click the option whose label starts with `label_start` (typing filters
    on the whole label, and Enter keeps the current choice when it matches too)."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=re.compile("^" + re.escape(label_start))).first.click()
    page.keyboard.press("Escape")


def _job_id(page, elem_id: str) -> str:
    """The job id a picker shows (its label is "<what the job is> · <id>")."""
    text = page.locator(f"#{elem_id} input").input_value()
    found = re.search(r"(erase|spectrum)-\d{8}-\d{6}-\d{3}(-[0-9a-f]{16})?", text)
    return found.group(0) if found else text


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["laptop", "phone"])
def test_a_first_visit_opens_on_a_finished_example(browser_page, viewport):
    """A new visitor, with no job of its own, sees a shipped example's Results view (headline and grid)
    within 10 s of the page's first paint; on a phone too. A link with ?job=<id> opens that result."""
    from jobs import examples

    first = examples.shipped()[0]["id"]
    context = browser_page.context.browser.new_context(viewport=dict(zip(("width", "height"), viewport)))
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(browser_page.url.split("?")[0], wait_until="commit")
    page.wait_for_selector("#results-summary")  # the page has painted
    painted = page.evaluate("performance.now()")
    page.wait_for_selector("#results-summary:has-text('In short:')")
    page.wait_for_function("document.querySelector('#results-grid img')?.complete")
    shown = page.evaluate("performance.now()")
    assert shown - painted < 10_000, f"the example took {(shown - painted) / 1000:.1f} s after the first paint"
    assert _job_id(page, "results-job") == first and "shipped example" in page.inner_text("#results-summary")
    assert page.locator("#results-link input, #results-link textarea").first.input_value().endswith(f"?job={first}")
    _no_sideways_scroll(page)
    _shot(page, f"results-example-{viewport[0]}x{viewport[1]}", full_page=False)
    other = examples.shipped()[-1]["id"]  # a shared link opens its own result
    page.goto(browser_page.url.split("?")[0] + f"?job={other}")
    page.wait_for_function(f"document.querySelector('#results-job input')?.value.includes('{other}')")
    page.wait_for_selector("#results-summary:has-text('In short:')")
    context.close()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two erasures, two spectra and three image requests through the real page
def test_user_flow_in_a_real_browser(browser_page):
    page = browser_page
    # Model: load the embedded model (a first visit opens on a shipped example's Results)
    _watch_progress(page)
    page.get_by_role("tab", name="Model").click()
    page.get_by_role("button", name="Load model").click()
    page.wait_for_selector("#model-info:has-text('loaded on cpu')")
    _showed_progress(page, "model-info")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("document.querySelector('#generate-images img')?.complete")
    _showed_progress(page, "generate-images")
    _shot(page, "model")

    # Erase: bad input shows a message and starts nothing
    page.get_by_role("tab", name="Erase").click()
    _fill(page, "erase-target", "")
    page.locator("#erase-start").click()
    page.wait_for_selector("text=targets must be a non-empty list")
    assert page.locator("#erase-job input").input_value() == ""
    _fill(page, "erase-target", "star")

    # Erase: AP on "star", a small step budget, progress watched while it runs
    _fill(page, "erase-steps", 60)
    _fill(page, "erase-lr", 0.003)
    _fill(page, "erase-snapshot", 10)
    page.locator("#erase-start").click()
    page.wait_for_selector("#erase-status:has-text('running')")
    seen, ticks, texts = set(), [], []
    while "done" not in (text := page.inner_text("#erase-status")):
        assert "failed" not in text, text
        texts.append(text)
        if m := re.search(r"step (\d+) / 60", text):
            seen.add(int(m.group(1)))
        if m := re.search(r"(?:(\d+) min )?(\d+) s so far", text):
            ticks.append(60 * int(m.group(1) or 0) + int(m.group(2)))
        page.wait_for_timeout(500)
    assert any(0 < s < 60 for s in seen), f"no intermediate progress shown: {seen}"
    # the time so far ticks from the start, set-up and pictures included (it once froze between events)
    assert ticks == sorted(ticks) and len(set(ticks)) >= 3, ticks
    assert any("preparing" in t for t in texts) or not any("step 0 /" in t for t in texts[4:]), texts[:6]
    job = _job_id(page, "erase-job")
    assert job.startswith("erase-")
    _shot(page, "erase")

    # Results: the finished job opens its Results view by itself
    page.wait_for_selector("#results-summary:has-text('AP · star · 60 steps')")
    assert _job_id(page, "results-job") == job
    # progress shows while base and erased are sampled, then one image holds both, side by side
    # (the shipped example's grid was on screen before: wait for this run's table, its label in the header)
    page.wait_for_selector("#results-recognised:has-text('AP · star · 60 steps')")
    page.wait_for_selector("#results-recognised:has-text('erasure rate')")
    _showed_progress(page, "results-grid")
    grid = _image(page, "results-grid")
    tile = (grid.shape[1] - 170 - 16) // 8  # 4 seeds x (base, erased) + the label column and the gap
    # 2 star rows, the concepts the erasure hit hardest, the adversarial concept if the search concentrated,
    # then kept shapes (ui.results_tab.default_prompts)
    if not page.locator("#results-prompts textarea").is_visible():  # the prompts sit in a closed accordion
        page.get_by_text("Prompts and seeds of the before / after image").click()
    rows = page.locator("#results-prompts textarea").input_value(timeout=30_000).splitlines()
    n_rows = len(rows)
    assert tile % 32 == 0 and grid.shape[0] == 44 + n_rows * tile and rows[:2] == ["a red star", "a blue star"]

    def gap(row):  # mean difference of base and erased tiles of one prompt row, same seeds
        y = 44 + row * tile
        base, erased = grid[y : y + tile, 170 : 170 + 4 * tile], grid[y : y + tile, 186 + 4 * tile : 186 + 8 * tile]
        return np.abs(base - erased).mean()
    from ui.results_tab import KEPT

    star, kept = [gap(r) for r in (0, 1)], [gap(r) for r, p in enumerate(rows) if p in KEPT["shapes"]]
    assert len(kept) >= 2, rows
    # the star rows changed more than the kept rows: a 60-step run at 3x fast's lr is a UI check, not the
    # erasure bar (bench_erasure, test_erasure_quality); with fast's latent bank it measured 30.5 against 16.9
    assert min(star) > 1.5 * np.median(kept), (star, kept)
    # the search heatmap: concepts x steps, at least two of them away from uniform
    z = page.evaluate("document.querySelector('#results-heatmap .js-plotly-plot').data[0].z")
    assert sum(any(abs(v) > 1e-4 for v in row) for row in z) >= 2, z
    page.wait_for_selector("#results-strips img")
    _no_sideways_scroll(page)
    page.evaluate("document.querySelector('#results-job').scrollIntoView({block: 'start'})")
    _shot(page, "results", full_page=False)  # what a laptop shows of the view: grid, search, spectrum
    _shot(page, "results-full")

    # Results: the run's spectrum, then a click on one of its concepts draws it before and after
    _fill(page, "results-k", 2)
    page.locator("#results-spectrum-go").click()
    page.wait_for_selector("#results-spectrum-status:has-text('Spectrum done')")
    page.wait_for_function("document.querySelector('#results-spectrum-table').innerText.includes('star')",
                           timeout=60_000)
    page.locator("#results-spectrum-table").get_by_text("star", exact=True).first.click()  # the erased concept
    page.wait_for_function("document.querySelector('#results-concept textarea, #results-concept input').value.length > 0")
    drill = _image(page, "results-drill")
    _showed_progress(page, "results-drill")
    # a grid: star as the spectrum drew it and in three colours (ui.results_tab.drill_prompts), base | erased
    assert drill.shape[1] == grid.shape[1] and drill.shape[0] == 44 + 4 * tile
    page.evaluate("document.querySelector('#results-job').scrollIntoView({block: 'start'})")
    _shot(page, "results", full_page=False)  # what a laptop shows of the view: grid, search, spectrum
    page.evaluate("document.querySelector('#results-spectrum-table').scrollIntoView({block: 'center'})")
    _shot(page, "results-spectrum", full_page=False)

    # a reload keeps the selected job; the Jobs tab filters, and opens a job where it is shown
    page.reload()
    _watch_progress(page)
    page.get_by_role("tab", name="Results").click()
    page.wait_for_function(f"document.querySelector('#results-job input')?.value.includes('{job}')", timeout=60_000)
    page.get_by_role("tab", name="Jobs").click()
    page.locator("#jobs-kind").get_by_text("spectrum", exact=True).click()
    # every row's kind cell says spectrum (a spectrum's title names the erase job it measured: not the ids)
    page.wait_for_function("(cells => cells.includes('spectrum') && !cells.includes('erase'))"
                           "(document.querySelector('#job-table').innerText.split('\\n').map(c => c.trim()))",
                           timeout=30_000)
    page.locator("#jobs-kind").get_by_text("all", exact=True).click()
    _choose(page, "jobs-pick", job)
    page.locator("#jobs-open").click()
    page.wait_for_selector("#results-summary:has-text('AP · star · 60 steps')")

    # a second erasure of star, with ESD, lands on its own Results view
    page.get_by_role("tab", name="Erase").click()
    page.wait_for_function("document.querySelector('#erase-steps input').value === '60'")  # the AP job's own settings
    _choose_option(page, "erase-method", "ESD:")
    page.wait_for_function("document.querySelector('#erase-method input').value.startsWith('ESD:')")
    page.wait_for_timeout(2000)  # the method's defaults fill the form first
    _fill(page, "erase-steps", 30)
    page.locator("#erase-start").click()
    page.wait_for_selector("#results-summary:has-text('ESD · star · 30 steps')")
    esd = _job_id(page, "results-job")
    page.locator("#results-proxy input").check()  # the proxy alone: seconds, not minutes
    page.locator("#results-spectrum-go").click()
    page.wait_for_selector("#results-spectrum-status:has-text('Spectrum done')")

    # Compare: both runs and the base on the same seeds, in one image; the star rows are gone in both
    page.get_by_role("tab", name="Compare").click()
    _choose(page, "compare-runs", job)
    _choose(page, "compare-runs", esd)
    page.locator("#compare-go").click()
    page.wait_for_selector("#compare-summary table")
    rows = {r.locator("td").first.inner_text(): [c.inner_text() for c in r.locator("td").all()[1:]]
            for r in page.locator("#compare-summary table tbody tr").all()}
    assert len(rows["✗ a red star"]) == 3, rows  # base, AP, ESD
    assert rows["✗ a red star"][0] == "4/4" and rows["✗ a blue star"][0] == "4/4", rows
    assert int(rows["✗ a red star"][1].split("/")[0]) <= 1 and int(rows["✗ a blue star"][1].split("/")[0]) <= 1, rows
    for prompt in ("a red heart", "a green circle", "a yellow moon"):
        assert rows[prompt][1] in ("3/4", "4/4"), rows
    sheet = _image(page, "compare-grid")
    _showed_progress(page, "compare-grid")
    assert sheet.shape[1] == 170 + 3 * 4 * ((sheet.shape[1] - 170 - 32) // 12) + 32  # base + two runs, 4 seeds each
    # ... and both runs' spectra overlaid: a bar per run per concept, and their difference
    page.wait_for_function("document.querySelector('#compare-spectra .js-plotly-plot')")
    traces = page.evaluate("document.querySelector('#compare-spectra .js-plotly-plot').data.map(t => t.name)")
    assert traces[:2] == ["AP · star · 60 steps", "ESD · star · 30 steps"] and len(traces) == 3, traces
    _no_sideways_scroll(page)
    _shot(page, "compare")

    # Erase: the AP run as a full diffusers folder (a zip), with progress while it is written
    page.get_by_role("tab", name="Erase").click()
    _choose(page, "erase-job", job)
    page.wait_for_selector("#erase-status:has-text('done')")
    page.locator("#erase-export").click()
    page.wait_for_function("document.querySelector('#erase-files').innerText.includes('diffusers')")  # stem | .zip
    _showed_progress(page, "erase-files")

    # Spectrum: against the finished erasure, then download the CSV
    page.get_by_role("tab", name="Spectrum").click()
    _choose(page, "spectrum-run", job)
    _fill(page, "spectrum-k", 2)
    _fill(page, "spectrum-steps", 10)
    page.locator("#spectrum-start").click()
    shown = []
    while "done" not in (text := page.inner_text("#spectrum-status")):
        assert "failed" not in text, text
        shown.append(text)
        page.wait_for_timeout(500)
    # while it runs: concepts done of the total and the time so far (the time left once it has measured one)
    assert any(re.search(r"\d+ / 27 concepts", t) and "so far" in t for t in shown), shown[-3:]
    page.wait_for_function("document.querySelector('#spectrum-table').innerText.includes('star')", timeout=60_000)
    with page.expect_download() as download:
        page.locator("#spectrum-csv a").first.click()
    csv = Path(download.value.path()).read_text()
    assert csv.startswith("concept,") and "\nstar,target," in csv
    _shot(page, "spectrum")

    # Jobs: both jobs listed, done
    page.get_by_role("tab", name="Jobs").click()
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_function(f"document.querySelector('#job-table').innerText.includes('{job}')", timeout=60_000)
    _shot(page, "jobs")


def _row_click(page, job_id: str) -> None:
    """Click the Jobs table's row of a job (its first cell) and wait for the picker to take it. The table is
    filtered to the job's kind first: a long table renders only the rows in view."""
    page.locator("#jobs-kind").get_by_label(job_id.split("-")[0], exact=True).check()
    row = page.locator("#job-table .virtual-row", has_text=job_id).first  # Gradio's table draws rows as divs
    row.wait_for(timeout=30_000)
    row.locator(".body-cell").first.click()
    page.wait_for_function(f"document.querySelector('#jobs-pick input')?.value.includes('{job_id}')", timeout=30_000)


def _selected_tab(page) -> str:
    return page.locator("[role=tab][aria-selected=true]").first.inner_text().strip()


@pytest.mark.slow
def test_jobs_row_click_picks_open_goes_to_its_tab_and_a_queued_job_cancels_at_once(browser_page):
    from jobs.examples import EXAMPLES, shipped

    page = browser_page
    erase = shipped()[1]["id"]
    spectrum = next(p.name for p in sorted(EXAMPLES.iterdir()) if p.name.startswith("spectrum-"))
    page.get_by_role("tab", name="Jobs").click()
    for job, tab, picker in ((spectrum, "Spectrum", "spectrum-job"), (erase, "Results", "results-job")):
        _row_click(page, job)
        page.locator("#jobs-open").click()  # the job's own tab, with the job picked there
        page.wait_for_function(f"document.querySelector('#{picker} input')?.value.includes('{job}')", timeout=30_000)
        assert _selected_tab(page) == tab
        page.get_by_role("tab", name="Jobs").click()
    # two long erasures: the first runs, the second waits; cancelling the waiting one ends it at once
    page.get_by_role("tab", name="Erase").click()
    ids = []
    for _ in range(2):
        _fill(page, "erase-target", "star")
        _fill(page, "erase-steps", 500)
        page.locator("#erase-start").click()
        page.wait_for_function(f"(v => v && !{ids!r}.some(i => v.includes(i)) && /erase-/.test(v))"
                               f"(document.querySelector('#erase-job input')?.value)", timeout=60_000)
        ids.append(_job_id(page, "erase-job"))
    page.wait_for_selector("#erase-status:has-text('ahead in the queue'), #erase-status:has-text('next in the queue')")
    page.get_by_role("tab", name="Jobs").click()
    _row_click(page, ids[1])
    page.locator("#jobs-cancel").click()
    t0 = page.evaluate("performance.now()")
    page.wait_for_function(f"[...document.querySelectorAll('#job-table .virtual-row')].some(r => r.innerText.includes("
                           f"'{ids[1]}') && r.innerText.includes('cancelled'))", timeout=30_000)
    assert page.evaluate("performance.now()") - t0 < 10_000  # not when the worker reaches it
    _row_click(page, ids[0])  # the running one too: nothing left running for the next test
    page.locator("#jobs-cancel").click()
    page.wait_for_function(f"[...document.querySelectorAll('#job-table .virtual-row')].some(r => r.innerText.includes("
                           f"'{ids[0]}') && r.innerText.includes('cancelled'))", timeout=120_000)


# WCAG contrast of every visible text (SVG excepted: plots draw their own white box) against the first
# opaque background behind it; [text, colour, background, ratio] for each below `minimum`
LOW_CONTRAST = """minimum => {
  const rgba = c => c.match(/[\\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = rgba(c).slice(0, 3).map(x => { x /= 255;
                     return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const opaque = c => (rgba(c)[3] ?? 1) > 0.5;
  const behind = el => { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
                         if (opaque(c)) return c; } return 'rgb(255, 255, 255)'; };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || !el.checkVisibility()) continue;
    const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join(' ').trim();
    if (!text) continue;
    const [fg, bg] = [getComputedStyle(el).color, behind(el)];
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < minimum) low.push([text.slice(0, 40), fg, bg, +ratio.toFixed(2)]);
  }
  return low;
}"""


@pytest.mark.slow
def test_every_text_reads_in_light_and_dark_mode(browser_page):
    """The theme (ui/theme.py) keeps every text of every tab at 4.5 : 1 in both of Gradio's modes."""
    page = browser_page
    base = page.url.split("?")[0]
    for mode in ("light", "dark"):
        page.goto(f"{base}?__theme={mode}")
        page.wait_for_selector("#results-summary", state="attached")  # the page opens on Results
        assert page.evaluate("document.body.classList.contains('dark')") == (mode == "dark")
        for tab in ("Model", "Erase", "Results", "Spectrum", "Compare", "Jobs"):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(500)
            assert page.evaluate(LOW_CONTRAST, 4.5) == [], f"{mode} mode, {tab} tab"
        if mode == "dark":
            _shot(page, "jobs-dark", full_page=False)


CRAFTED_HOST = "198.51.100.23"  # a documentation address nobody serves: any request to it means markup rendered


@pytest.mark.slow
def test_crafted_markup_in_a_job_renders_as_text(browser_page, tmp_path):
    """Titles, messages and concepts that a visitor's words reach are shown as text: a job (made on the
    server, so past the input rules) titled with an image and a link, picked in the Jobs tab and opened,
    makes the browser fetch nothing from the crafted host and shows the characters; a markup concept for a
    non-embedded model is refused at the API."""
    from jobs.store import JobFolder
    from tests.app_server import Visitor

    markup = f"<img src=http://{CRAFTED_HOST}/a.png> [x](http://{CRAFTED_HOST}/b) ![y](http://{CRAFTED_HOST}/c.png)"
    job = JobFolder.create(tmp_path / "jobs", "erase", {"model": "sd-1.4", "method": "esd", "targets": [markup]},
                           f"esd erases {markup} from sd-1.4 (1 steps)")
    job.set_state("failed", 0, 1, f"message {markup}")
    server = AppServer(tmp_path / "jobs").start()
    try:
        kind, out = Visitor(server.url).call("erase_start", ["sd-1.4", "esd", markup, "object", "fast", "xattn", 1,
                                                             1e-5, 0])
        assert kind == "error" and "is not a concept" in str(out), out
        # a second page of the module's browser (one Playwright per process), on this test's own server
        page = browser_page.context.browser.new_page(viewport={"width": 1280, "height": 800})
        asked = []
        page.on("request", lambda r: asked.append(r.url))
        page.goto(server.url)
        page.get_by_role("tab", name="Jobs").click()
        page.wait_for_function(f"document.querySelector('#job-table').innerText.includes('{job.id}')",
                               timeout=60_000)
        _choose(page, "jobs-pick", job.id)
        page.locator("#jobs-open").click()
        page.wait_for_selector("#erase-status:has-text('failed')", timeout=60_000)
        status = page.locator("#erase-status").inner_text().replace("\u200b", "")  # md_text's link breaker
        assert f"<img src=http://{CRAFTED_HOST}/a.png>" in status and "[x](" in status, status
        assert page.locator(f"img[src*='{CRAFTED_HOST}'], a[href*='{CRAFTED_HOST}']").count() == 0
        page.close()
        assert not [u for u in asked if CRAFTED_HOST in u], asked
    finally:
        server.kill()
