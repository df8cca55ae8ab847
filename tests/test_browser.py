"""The explorers in a real browser: JupyterLab on loopback, headless Chromium driven by Playwright.

Opens copies of `nbs/29_explore.ipynb`, `nbs/26_theory.ipynb`, `nbs/27_theory_toys.ipynb` and `nbs/28a_populations.ipynb` as
committed (their kernelspec starts the kernel: no "Select Kernel" dialog; cells flagged `#|slow`, which hold stored outputs of long
runs, left out), runs every cell, then
- in 29_explore moves the τ slider of the last cell's τ sweep with the keyboard and checks that the chart and the labels follow,
  then picks two methods and checks that the figures, filled again in place, show just those;
- in 26_theory and 27_theory_toys moves one slider of each theory explorer and checks that its figure changed;
- in 28a_populations moves the τ slider of the many-model explorer and checks that its histograms changed.
Leaves screenshots and the measured update times in `tests/artifacts/`.
Needs Chromium (Debian's `chromium` package, or `$RURK_CHROMIUM`) and the Python `playwright` package; `.ci/run` installs both.
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT

ARTIFACTS = ROOT/'tests'/'artifacts'
CHROMIUM = os.environ.get('RURK_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
NOTEBOOKS = {'explore.ipynb': '29_explore.ipynb', 'theory.ipynb': '26_theory.ipynb', 'theory_toys.ipynb': '27_theory_toys.ipynb',
             'populations.ipynb': '28a_populations.ipynb'}


def copy_without_slow(src: Path, dst: Path):
    "Copy a notebook without its `#|slow` cells (long runs whose outputs are stored; the tests do not run them)."
    nb = json.loads(src.read_text())
    slow = lambda c: c['cell_type'] == 'code' and ''.join(c['source']).replace(' ', '').startswith('#|slow')
    nb['cells'] = [c for c in nb['cells'] if not slow(c)]
    dst.write_text(json.dumps(nb))


def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_ready(url: str, proc, timeout: float = 60):
    "Poll JupyterLab's status API until it answers (or the server dies)."
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None: raise RuntimeError(f"JupyterLab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


def start_lab(root: Path, extra_env: dict = None):
    "Start JupyterLab serving `root` on a free loopback port with a random token; settings and runtime files kept under `root`."
    port, token = free_port(), secrets.token_hex(16)
    settings = root/'.lab-settings'/'@jupyterlab'/'apputils-extension'
    settings.mkdir(parents=True)
    (settings/'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root/'.lab-settings'), JUPYTERLAB_WORKSPACES_DIR=str(root/'.lab-workspaces'),
               JUPYTER_RUNTIME_DIR=str(root/'.runtime'), **(extra_env or {}))
    log = open(root/'jupyterlab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--ip=127.0.0.1', f'--port={port}', '--no-browser', '--allow-root',
                             f'--ServerApp.token={token}', f'--ServerApp.root_dir={root}'], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f'http://127.0.0.1:{port}'
    try: wait_ready(f'{base}/api/status?token={token}', proc)
    except Exception: stop_lab(proc); raise
    return proc, base, token


def stop_lab(proc):
    "Stop the server by its PID (SIGTERM lets it shut its kernels down), SIGKILL if it hangs."
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try: proc.wait(20)
        except subprocess.TimeoutExpired: os.kill(proc.pid, signal.SIGKILL); proc.wait(10)


def text(loc) -> str: return (loc.text_content() or "").strip()


@pytest.fixture(scope='module')
def lab(tmp_path_factory, cache_dir):
    "JupyterLab serving copies of the committed notebooks (kernelspec as committed), and a headless Chromium; stopped afterwards."
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (or set RURK_CHROMIUM)"
    root = tmp_path_factory.mktemp('lab')
    for copy, src in NOTEBOOKS.items(): copy_without_slow(ROOT/'nbs'/src, root/copy)
    shutil.copyfile(ROOT/'settings.ini', root/'settings.ini')   # the notebooks read stored run outputs (rurk.results.load_stored)
    shutil.copytree(ROOT/'nbs'/'stored', root/'nbs'/'stored')
    ARTIFACTS.mkdir(exist_ok=True)
    proc, base, token = start_lab(root, dict(RURK_CACHE=str(cache_dir)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try: yield dict(browser=browser, base=base, token=token)
            finally: browser.close()
    finally:
        stop_lab(proc)
    assert proc.poll() is not None, "JupyterLab is still running"


def test_committed_notebooks_have_a_kernelspec():
    "Every notebook in nbs/ names its kernel (nbdev_clean keeps it), so JupyterLab starts it without asking."
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        ks = json.loads(nb.read_text())['metadata'].get('kernelspec', {})
        assert ks.get('name') == 'python3' and ks.get('language') == 'python', f"{nb.name}: kernelspec {ks!r}"


def open_and_run_all(page, base, token, notebook, shot):
    "Open `notebook`, check that no dialog asks for a kernel, run all cells, wait until the kernel is idle with no traceback."
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page.goto(f'{base}/lab/tree/{notebook}?token={token}&reset')
    page.wait_for_selector('.jp-Notebook .jp-CodeCell', timeout=90_000)
    try:   # the committed kernelspec names the kernel: JupyterLab must start it without a "Select Kernel" dialog
        page.wait_for_selector('.jp-Dialog', timeout=5_000)
        page.screenshot(path=str(ARTIFACTS/f'{shot}_dialog.png')); raise AssertionError(f"{notebook}: a dialog opened: {text(page.locator('.jp-Dialog'))[:300]}")
    except PlaywrightTimeout: pass
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click("li[data-command='runmenu:run-all']")


def check_no_traceback(page):
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]:has-text("Traceback")')
    assert errors.count() == 0, f"a cell failed: {errors.first.inner_text()[:2000]}"


def test_explore_widgets_in_jupyterlab(lab):
    page = lab['browser'].new_page(viewport={'width': 1500, 'height': 1100})
    try: before, after, times = drive_explore(page, lab['base'], lab['token'])
    except Exception:
        page.screenshot(path=str(ARTIFACTS/'explore_failure.png')); raise
    finally: page.close()
    report = dict(before={k: v for k, v in before.items() if k != 'bars'}, after={k: v for k, v in after.items() if k != 'bars'},
                  update_ms=[round(t, 1) for t in times], median_update_ms=round(sorted(times)[len(times) // 2], 1))
    (ARTIFACTS/'explore_timings.json').write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps(report, ensure_ascii=False))
    for k in ('readout', 'title', 'hist', 'table', 'bars'): assert before[k] != after[k], f"{k} did not change when τ moved: {before[k]!r}"
    assert after['readout'] in after['title'] and after['readout'] in after['hist'], (after['readout'], after['title'])
    assert f"r_τ@{after['readout']}" in after['table']
    assert '/' not in before['header'] and 'seed' in before['header'], f"the header should name the run, not a folder: {before['header']!r}"
    assert len(after['legend_all']) > 3 and after['legend'] == ['gd', 'rurk', 'at τ'] and after['hist_legend'] == ['gd', 'rurk'], (after['legend'], after['hist_legend'])  # the refilled figures


def drive_explore(page, base, token):
    "Open the notebook, run all, move the last τ sweep's slider; return the labels before and after, and the update times (ms)."
    open_and_run_all(page, base, token, 'explore.ipynb', 'explore')
    # the last cell shows `explore(...)`: its first slider is the τ sweep's, its first plot the r_τ chart, its table the metrics
    last = page.locator('.jp-Notebook .jp-CodeCell').last
    last.locator('.rurk-table').wait_for(timeout=300_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
    check_no_traceback(page)
    slider, plots, table = last.locator('.widget-slider').first, last.locator('.js-plotly-plot'), last.locator('.rurk-table').first
    readout, title, hist_title = slider.locator('.widget-readout'), plots.nth(0).locator('.gtitle'), plots.nth(1).locator('.gtitle')
    header = last.locator('.widget-html').first
    plots.nth(0).scroll_into_view_if_needed()
    def labels(): return dict(readout=text(readout), title=text(title), hist=text(hist_title), table=text(table), bars=bars(plots.nth(1)), header=text(header))
    before = labels()
    page.screenshot(path=str(ARTIFACTS/'explore_before.png'))
    times = []
    for _ in range(5):  # τ one grid point to the right, five times, timed in the page: key press -> chart redrawn
        page.evaluate(WATCH, plots.nth(0).element_handle())
        slider.locator('.noUi-handle').first.press('ArrowRight')
        times.append(page.evaluate('window.__rurkRedrawn'))
    page.wait_for_timeout(500)
    after = labels()
    page.screenshot(path=str(ARTIFACTS/'explore.png'))
    last.screenshot(path=str(ARTIFACTS/'explore_output.png'))
    # two methods only: the widget refills its figures in place, and the browser must draw just those
    after['legend_all'] = legend(plots.nth(0))
    page.evaluate(WATCH, plots.nth(0).element_handle())
    last.locator('.widget-select-multiple select').first.select_option(['gd', 'rurk'])
    page.evaluate('window.__rurkRedrawn'); page.wait_for_timeout(1000)
    after['legend'] = legend(plots.nth(0)); after['hist_legend'] = legend(plots.nth(1))
    return before, after, times


THEORY_EXPLORERS = {'theory.ipynb': ('cap',), 'theory_toys.ipynb': ('lemma', 'reach'), 'populations.ipynb': ('population',)}  # the widget cells of each notebook, in order;
# each shows a static picture, then the widget


def test_theory_widgets_in_jupyterlab(lab):
    page = lab['browser'].new_page(viewport={'width': 1500, 'height': 1100})
    try: report = {k: v for nb, names in THEORY_EXPLORERS.items() for k, v in drive_theory(page, lab['base'], lab['token'], nb, names).items()}
    except Exception:
        page.screenshot(path=str(ARTIFACTS/'theory_failure.png')); raise
    finally: page.close()
    (ARTIFACTS/'theory_widgets.json').write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps(report, ensure_ascii=False))
    for name, r in report.items():
        assert r['changed'], f"{name} explorer: the figure did not change when its {r['slider']} slider moved"
        assert r['plot_width'] >= 0.6 * r['cell_width'], f"{name} explorer: the figure uses {r['plot_width']} of {r['cell_width']} px"
        assert r['pictures'] >= 1, f"{name} explorer: no static picture next to the widget"


def drive_theory(page, base, token, notebook, names):
    "Open a theory notebook, run all; in each explorer move the first slider one step; return what changed, widths and timings."
    open_and_run_all(page, base, token, notebook, notebook.split('.')[0])
    cells = page.locator('.jp-Notebook .jp-CodeCell:has(.jp-OutputArea .widget-slider)')
    end = time.time() + 300
    while cells.count() < len(names) and time.time() < end: page.wait_for_timeout(500)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
    check_no_traceback(page)
    assert cells.count() == len(names), f"{notebook}: {cells.count()} widget cells, expected {len(names)}"
    report = {}
    for k, name in enumerate(names):
        cell = cells.nth(k); plot = cell.locator('.js-plotly-plot').first
        plot.wait_for(timeout=60_000); plot.scroll_into_view_if_needed(); page.wait_for_timeout(300)
        slider = cell.locator('.widget-slider').first
        label, before = text(slider.locator('.widget-label')), text(slider.locator('.widget-readout'))
        page.evaluate(WATCH.replace('20000', '60000'), plot.element_handle())
        slider.locator('.noUi-handle').first.press('ArrowRight')
        try: ms, changed = page.evaluate('window.__rurkRedrawn'), True
        except Exception: ms, changed = None, False
        page.wait_for_timeout(300)
        report[name] = dict(slider=label, readout=[before, text(slider.locator('.widget-readout'))], changed=changed, redraw_ms=ms and round(ms),
                            plot_width=round(plot.bounding_box()['width']), cell_width=round(cell.locator('.jp-OutputArea').bounding_box()['width']),
                            pictures=cell.locator('.jp-OutputArea-output img').count(), titles=[text(t) for t in plot.locator('.annotation-text').all()])
        cell.screenshot(path=str(ARTIFACTS/f'theory_{name}.png'))
    page.screenshot(path=str(ARTIFACTS/f"{notebook.split('.')[0]}.png"))
    return report


WATCH = """plot => { const before = plot.innerHTML, t0 = performance.now();
  window.__rurkRedrawn = new Promise((done, fail) => { const poll = () => {
    if (plot.innerHTML !== before) done(performance.now() - t0);
    else if (performance.now() - t0 > 20000) fail(new Error('the chart did not change within 20 s'));
    else requestAnimationFrame(poll); }; requestAnimationFrame(poll); }); }"""


def legend(plot) -> list:
    "The legend entries of a plotly chart, as drawn."
    return plot.evaluate("el => Array.from(el.querySelectorAll('.legend .traces .legendtext')).map(t => t.textContent)")


def bars(plot) -> list:
    "The drawn bars of a plotly bar chart (their SVG paths)."
    return plot.evaluate("el => Array.from(el.querySelectorAll('.bars path')).map(p => p.getAttribute('d'))")
