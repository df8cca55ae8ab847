"""The documentation site (`rurk-site`, nbs/32_site.ipynb) built from every notebook, then read in headless Chromium
offline.

Builds the whole site into a temporary folder, serves it on loopback, and with every request to another host blocked
(and counted as a failure) checks that
- every page loads with no failed, blocked or 4xx/5xx request;
- the theory page (26_theory) draws its stored pictures and its formulas (MathJax, bundled), and shows the note that its
  widget needs a kernel; the τ-sweep page (28_sweep) draws its plotly figures (plotly.js bundled);
- the search finds `residual_knowledge`.
Leaves screenshots and the timings in `tests/artifacts/`. Needs Chromium (Debian's `chromium`, or `$RURK_CHROMIUM`)
and the Python `playwright` package, as tests/test_browser.py.
"""
import functools, json, subprocess, sys, threading, time
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
import pytest
from conftest import ROOT
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

TABS = 6   # pages loaded at once
BUILD = 'import sys; from rurk.site import main; sys.exit(main(sys.argv[1:]))'


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The whole site, built by `rurk-site` into a temporary folder and served on loopback; the build time."
    tmp = tmp_path_factory.mktemp('site')
    t = time.time()
    r = subprocess.run([sys.executable, '-c', BUILD, '--out', str(tmp/'site'), '--build', str(tmp/'build')],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, f"rurk-site failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    build_s = time.time() - t
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(tmp/'site')))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try: yield dict(root=tmp/'site', base=f'http://127.0.0.1:{server.server_address[1]}', build_s=build_s)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (or set RURK_CHROMIUM)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try: yield b
        finally: b.close()


def offline_page(browser, base):
    """A page whose requests to anything but `base` are blocked; `page.problems` lists blocked, failed and 4xx/5xx
    requests.
    (Chromium reports a frame's `about:blank` as a failed request: not a request to the network, not counted.)"""
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    page.problems = []
    def route(r):
        if r.request.url.startswith(base + '/') or r.request.url.startswith('data:'): r.continue_()
        else:
            page.problems.append(f"blocked: {r.request.url}")
            r.abort()
    page.route('**/*', route)
    def failed(q):
        if not q.url.startswith('about:'): page.problems.append(f"failed: {q.url} ({q.failure})")
    page.on('requestfailed', failed)
    page.on('response', lambda s: s.status >= 400 and page.problems.append(f"HTTP {s.status}: {s.url}"))
    return page


def test_site_offline(site, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    base, pages = site['base'], sorted(p.name for p in site['root'].glob('*.html') if p.name != '404.html')
    nbs = sorted((ROOT/'nbs').glob('*.ipynb'))
    assert len(pages) == len(nbs), f"{len(nbs)} notebooks, {len(pages)} pages: {pages}"
    t, report = time.time(), dict(build_s=round(site['build_s'], 1))
    # every page loads, and asks for nothing missing or elsewhere; a tab each (leaving a page aborts what it still
    # loads, which is no failure of the next page)
    for i in range(0, len(pages), TABS):
        tabs = {name: offline_page(browser, base) for name in pages[i:i + TABS]}
        try:
            for name, tab in tabs.items(): tab.goto(f'{base}/{name}', wait_until='commit')
            for name, tab in tabs.items():
                tab.wait_for_load_state('networkidle')
                assert tab.locator('h1').count() >= 1, f"{name}: no title"
                assert not tab.problems, f"{name}: {tab.problems}"
        finally:
            for tab in tabs.values(): tab.close()
    report['pages'], report['pages_s'] = len(pages), round(time.time() - t, 1)
    page = offline_page(browser, base)
    try:
        report.update(check_theory(page, base))
        assert not page.problems, page.problems
        report.update(check_sweep(page, base))
        assert not page.problems, page.problems
        page.goto(f'{base}/index.html', wait_until='networkidle')
        page.screenshot(path=str(ARTIFACTS/'site_home.png'))
        report['search_hits'] = check_search(page)
        assert not page.problems, page.problems
    except Exception:
        page.screenshot(path=str(ARTIFACTS/'site_failure.png'))
        raise
    finally: page.close()
    report['browser_s'] = round(time.time() - t, 1)
    (ARTIFACTS/'site_report.json').write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


def check_theory(page, base) -> dict:
    "The theory page: its pictures loaded, its formulas typeset by MathJax without errors, the widget's note shown."
    page.goto(f'{base}/theory.html', wait_until='networkidle')
    page.wait_for_function('window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && '
                           'document.querySelectorAll(".MathJax, .MathJax_Display").length > 0', timeout=30_000)
    imgs = page.evaluate("[...document.querySelectorAll('.jp-OutputArea img')].map(i => i.complete && i.naturalWidth)")
    math = page.locator('.MathJax, .MathJax_Display').count()
    assert len(imgs) >= 2 and all(w and w > 100 for w in imgs), f"theory page pictures: widths {imgs}"
    assert math >= 10 and page.locator('.MathJax_Error, merror').count() == 0, f"{math} formulas, or an error"
    assert page.locator('.rurk-widget-note').count() == 1 and page.locator('.rurk-widget-note').is_visible()
    assert page.locator('text=cap_measure').count() >= 1   # show_doc's block for an exported function
    page.screenshot(path=str(ARTIFACTS/'site_theory.png'))
    page.locator('.MathJax').first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS/'site_theory_math.png'))
    page.locator('.jp-OutputArea img').first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS/'site_theory_figure.png'))
    page.locator('h3:has-text("cap_measure")').first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS/'site_show_doc.png'))
    return dict(theory_pictures=len(imgs), theory_formulas=math)


def check_sweep(page, base) -> dict:
    "The τ-sweep page: its stored plotly figures drawn by the site's own plotly.js."
    page.goto(f'{base}/sweep.html', wait_until='networkidle')
    page.wait_for_selector('.js-plotly-plot .main-svg', timeout=30_000)
    n = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
    traces = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')]"
                           ".map(p => p.querySelectorAll('.trace').length)")
    assert n >= 2 and all(traces), f"plotly figures {n}, traces {traces}"
    page.locator('.js-plotly-plot').first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS/'site_plotly.png'))
    return dict(sweep_plotly_figures=n)


def check_search(page) -> int:
    "Search for `residual_knowledge`: the first result must name it; return the number of results."
    page.locator('label.md-search__icon, .md-search__input').first.click()
    page.locator('input.md-search__input').press_sequentially('residual_knowledge', delay=20)   # typed, as by a reader
    page.wait_for_selector('.md-search-result__item', timeout=60_000)
    items = page.locator('.md-search-result__item')
    assert 'residual_knowledge' in (items.first.text_content() or ''), items.first.text_content()
    page.screenshot(path=str(ARTIFACTS/'site_search.png'))
    return items.count()
