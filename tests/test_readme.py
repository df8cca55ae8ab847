"README's Python example runs as printed, and prints the rows `rurk-run` prints for GD and RURK; its audit example runs."
import json, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    "The Python block under README's '## From Python'."
    text = (ROOT/'README.md').read_text()
    section = text[text.index('## From Python'):]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def _row(name, res) -> str:
    "The line README's example prints for a method, from rurk-run's results."
    m, i = res['methods'][name], res['taus'].index(res['tau_main'])
    lo, hi = m['rk']['r_ci'][i]
    return (f"{name:5s} RA {m['RA']:.2f}  UA {m['UA']:.2f}  TA {m['TA']:.2f}  MIA {m['MIA']:.2f}  "
            f"gap {m['avg_gap']:.2f}  r@{res['tau_main']:g} {m['rk']['r'][i]:.3f} [{lo:.2f}, {hi:.2f}]")


def test_readme_example_matches_rurk_run(tmp_path):
    # the same torch thread count both ways (a model trained under another is another model)
    env = dict(os.environ, RURK_CACHE=str(tmp_path/'cache'))
    run = lambda args: subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    ex = run([sys.executable, '-c', 'import torch\ntorch.set_num_threads(2)\n' + _example()])
    assert ex.returncode == 0, ex.stderr[-3000:]
    cli = run([sys.executable, '-c', 'import sys; from rurk.run import main; sys.exit(main())', '--methods', 'gd',
               'rurk', '--no-relearn', '--threads', '2', '--out', str(tmp_path/'o'), '--quiet'])
    assert cli.returncode == 0, cli.stderr[-3000:]
    res = json.loads((tmp_path/'o'/'results.json').read_text())
    printed = ex.stdout.splitlines()
    assert printed[:2] == [_row(n, res) for n in ('gd', 'rurk')], (printed[:2], ex.stderr[-2000:])
    assert len(printed) > 2  # then RURK's RKResult


def _numbers(line: str) -> list:
    return [float(v) for v in re.findall(r'-?\d+\.\d+', line)]


def test_readme_audit_example_runs_as_printed(tmp_path):
    """README's 'Audit your own models', run as a new user would (its script, then its shell block): exit 0, and the table
    README shows (rendered from the stored run, `nbs/stored/readme_audit.json`), row for row; numbers within a tolerance
    that allows another CPU's float sums (on the machine that stored it they are equal)."""
    from rurk.audit import readme_example
    from rurk.report import format_table
    from rurk.results import load_stored
    script, commands = readme_example(ROOT)
    assert not re.search(r'^\s*(import|from) rurk', script, re.M)   # the models are made with plain PyTorch
    (tmp_path/'make_models.py').write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS='2')
    r = subprocess.run(['bash', '-c', commands], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    stored = format_table(load_stored('readme_audit', ROOT)).splitlines()
    printed = r.stdout.splitlines()
    start = next(i for i, l in enumerate(printed) if l.startswith('method'))
    got = printed[start:start + len(stored)]
    assert [l.split()[0] for l in got] == [l.split()[0] for l in stored], (got, stored)
    assert got[0] == stored[0]
    for a, b in zip(got[1:], stored[1:]):
        x, y = _numbers(a), _numbers(b)
        assert len(x) == len(y) and all(abs(u - v) <= (5 if abs(v) > 2 else 0.1) for u, v in zip(x, y)), (a, b)
    assert (tmp_path/'audit'/'report.html').exists() and 'wrote audit/results.json' in r.stdout
