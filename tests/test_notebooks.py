"The notebooks are the test suite: each runs top to bottom through nbdev's test runner (cells flagged slow/gpu skipped)."
import subprocess, sys, pytest
from conftest import ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))

def test_notebooks_found():
    assert len(NOTEBOOKS) >= 11 and 'index.ipynb' in NOTEBOOKS

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook(nb):
    r = subprocess.run([sys.executable, '-m', 'nbdev.test', '--path', str(ROOT/'nbs'/nb), '--n_workers', '1', '--do_print'],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, f"{nb} failed:\n{r.stdout[-5000:]}\n{r.stderr[-10000:]}"
