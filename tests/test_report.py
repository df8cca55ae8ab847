"""The self-contained report (`report.html`, `rurk.html_report`) in headless Chromium with the network off: every request
that is not the file itself (or an inline `data:` image) is blocked and counted as a failure; every chart must be drawn
and every image decoded. Checks the report of `rurk-audit` and the one `rurk-run` writes; screenshots in
`tests/artifacts/`. Needs Chromium and the Python `playwright` package, as `tests/test_browser.py`."""
import json
from pathlib import Path
import numpy as np, pytest, torch
from conftest import ROOT
from test_browser import CHROMIUM, CHROMIUM_ARGS, ARTIFACTS

CHART = '.js-plotly-plot'


@pytest.fixture(scope='module')
def reports(tmp_path_factory):
    "The report of a small audit (exported models on the digits) and of a small `rurk-run` study."
    from rurk.data import digits_scenario
    from rurk.models import make_model
    from rurk.train import fit
    from rurk.audit import AuditConfig, run_audit
    from rurk.config import RunConfig
    from rurk.runner import run_experiment
    d = tmp_path_factory.mktemp('report')
    scn = digits_scenario()
    for name, (xy, seed) in dict(u=(scn.train, 0), r=(scn.retain, 1), r2=(scn.retain, 2)).items():
        torch.manual_seed(seed)
        m = fit(make_model('smallcnn', n_classes=10), *xy, epochs=6, seed=seed, progress=False).eval()
        torch.export.save(torch.export.export(m, (scn.forget[0][:8],)), d/f'{name}.pt2')
    torch.save(dict(x=scn.forget[0], y=scn.forget[1]), d/'forget.pt')
    cfg = AuditConfig([d/'u.pt2'], [d/'r.pt2', d/'r2.pt2'], d/'forget.pt', taus=[0, 0.1, 0.2, 0.3], c=10)
    run_audit(cfg, out=d/'audit', log=lambda s: None)
    run_experiment(RunConfig(methods=['gd'], taus=[0, 0.1, 0.3], c=8, train_epochs=6, relearn=False), out=d/'run',
                   progress=False, log=lambda s: None)
    return dict(audit=d/'audit'/'report.html', run=d/'run'/'report.html')


def open_offline(browser, path: Path, shot: str) -> dict:
    "Open `path` with every non-file request blocked; wait for the charts; what was drawn, and the failed requests."
    page = browser.new_page(viewport={'width': 1200, 'height': 900})
    failed, blocked = [], []
    page.on('requestfailed', lambda r: failed.append(r.url))
    def route(r):
        if r.request.url.startswith(('file://', 'data:')): r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()
    page.route('**/*', route)
    try:
        page.goto(path.as_uri())
        page.wait_for_function(f"document.querySelectorAll('{CHART} .main-svg').length >= "
                               f"document.querySelectorAll('.plotly-graph-div').length", timeout=60_000)
        seen = page.evaluate("""() => ({
            divs: document.querySelectorAll('.plotly-graph-div').length,
            drawn: [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelectorAll('.trace').length > 0
                    && p.getBoundingClientRect().width > 300).length,
            images: document.querySelectorAll('figure img').length,
            decoded: [...document.querySelectorAll('figure img')].filter(i => i.complete && i.naturalWidth > 0).length,
            sections: [...document.querySelectorAll('section h2')].map(h => h.textContent),
            how: document.querySelectorAll('section p.how').length})""")
        page.screenshot(path=str(ARTIFACTS/f'{shot}.png'), full_page=True)
    finally: page.close()
    return dict(seen, failed=failed, blocked=blocked)


def test_reports_render_offline(reports):
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (or set RURK_CHROMIUM)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try: seen = {k: open_offline(browser, p, f'report_{k}') for k, p in reports.items()}
        finally: browser.close()
    (ARTIFACTS/'report_checks.json').write_text(json.dumps(seen, indent=1, ensure_ascii=False))
    for k, s in seen.items():
        assert s['failed'] == [] and s['blocked'] == [], (k, s['failed'], s['blocked'])
        assert s['divs'] == 2 and s['drawn'] == 2, (k, s)             # r_τ against τ, per-sample r̂
        assert s['images'] == 12 and s['decoded'] == 12, (k, s)       # six samples: x and x′ each
        assert s['how'] == len(s['sections']) == 7, (k, s['sections'])
        assert s['sections'][0] == 'Configuration and environment' and s['sections'][-1].startswith('Perturbed forget')
    assert seen['run']['sections'][-1] == 'Perturbed forget samples (gd)'  # an unlearning method, not the Original
