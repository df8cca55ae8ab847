"""The explorers in a real browser: JupyterLab on loopback, headless Chromium driven by Playwright.

Runs every cell of `nbs/15_explore.ipynb` (a copy), moves the τ slider of the last τ sweep with the keyboard and checks that
the chart and the labels follow. Leaves a screenshot and the measured update times in `tests/artifacts/`.
Needs Chromium (Debian's `chromium` package, or `$RURK_CHROMIUM`) and the Python `playwright` package; `.ci/run` installs both.
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
from conftest import ROOT

ARTIFACTS = ROOT/'tests'/'artifacts'
CHROMIUM = os.environ.get('RURK_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
NOTEBOOK = 'explore.ipynb'


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


def start_lab(root: Path):
    "Start JupyterLab serving `root` on a free loopback port with a random token; settings and runtime files kept under `root`."
    port, token = free_port(), secrets.token_hex(16)
    settings = root/'.lab-settings'/'@jupyterlab'/'apputils-extension'
    settings.mkdir(parents=True)
    (settings/'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root/'.lab-settings'), JUPYTERLAB_WORKSPACES_DIR=str(root/'.lab-workspaces'),
               JUPYTER_RUNTIME_DIR=str(root/'.runtime'))
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


def test_explore_widgets_in_jupyterlab(tmp_path):
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (or set RURK_CHROMIUM)"
    nb = json.loads((ROOT/'nbs'/'15_explore.ipynb').read_text())  # a copy, with the kernel to start (nbdev_clean strips it)
    nb['metadata']['kernelspec'] = dict(name='python3', display_name='Python 3 (ipykernel)', language='python')
    (tmp_path/NOTEBOOK).write_text(json.dumps(nb))
    ARTIFACTS.mkdir(exist_ok=True)
    proc, base, token = start_lab(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={'width': 1500, 'height': 1100})
            try: before, after, times = drive(page, base, token)
            except Exception:
                page.screenshot(path=str(ARTIFACTS/'explore_failure.png')); raise
            finally: browser.close()
    finally:
        stop_lab(proc)
    assert proc.poll() is not None, "JupyterLab is still running"
    report = dict(before={k: v for k, v in before.items() if k != 'bars'}, after={k: v for k, v in after.items() if k != 'bars'},
                  update_ms=[round(t, 1) for t in times], median_update_ms=round(sorted(times)[len(times) // 2], 1))
    (ARTIFACTS/'explore_timings.json').write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps(report, ensure_ascii=False))
    for k in ('readout', 'title', 'hist', 'table', 'bars'): assert before[k] != after[k], f"{k} did not change when τ moved: {before[k]!r}"
    assert after['readout'] in after['title'] and after['readout'] in after['hist'], (after['readout'], after['title'])
    assert f"r_τ@{after['readout']}" in after['table']


def drive(page, base, token):
    "Open the notebook, run all, move the last τ sweep's slider; return the labels before and after, and the update times (ms)."
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page.goto(f'{base}/lab/tree/{NOTEBOOK}?token={token}&reset')
    page.wait_for_selector('.jp-Notebook .jp-CodeCell', timeout=90_000)
    accept = page.locator('.jp-Dialog .jp-mod-accept')  # JupyterLab may ask which kernel to start: the notebook's
    try: accept.click(timeout=20_000)
    except PlaywrightTimeout: pass
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click("li[data-command='runmenu:run-all']")
    # the last cell shows `explore(...)`: its first slider is the τ sweep's, its first plot the r_τ chart, its table the metrics
    last = page.locator('.jp-Notebook .jp-CodeCell').last
    last.locator('.rurk-table').wait_for(timeout=300_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]:has-text("Traceback")')
    assert errors.count() == 0, f"a cell failed: {errors.first.inner_text()[:2000]}"
    slider, plots, table = last.locator('.widget-slider').first, last.locator('.js-plotly-plot'), last.locator('.rurk-table').first
    readout, title, hist_title = slider.locator('.widget-readout'), plots.nth(0).locator('.gtitle'), plots.nth(1).locator('.gtitle')
    plots.nth(0).scroll_into_view_if_needed()
    def labels(): return dict(readout=text(readout), title=text(title), hist=text(hist_title), table=text(table), bars=bars(plots.nth(1)))
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
    return before, after, times


WATCH = """plot => { const before = plot.innerHTML, t0 = performance.now();
  window.__rurkRedrawn = new Promise((done, fail) => { const poll = () => {
    if (plot.innerHTML !== before) done(performance.now() - t0);
    else if (performance.now() - t0 > 20000) fail(new Error('the chart did not change within 20 s'));
    else requestAnimationFrame(poll); }; requestAnimationFrame(poll); }); }"""


def bars(plot) -> list:
    "The drawn bars of a plotly bar chart (their SVG paths)."
    return plot.evaluate("el => Array.from(el.querySelectorAll('.bars path')).map(p => p.getAttribute('d'))")
