"`rurk-run --executor ray` on a local Ray instance (loopback, 2 CPUs) against the local executor, and its handling of resume and failures."
import json, math
import pytest, torch
from rurk.run import main
from rurk.runner import run_experiment
from rurk.config import RunConfig
from rurk.methods import register, METHODS

import ray  # part of the test install (README: pip install -e ".[dev,ray]"): a missing Ray fails here, it is not skipped

ARGS = ['--methods', 'gd', 'rurk', '--hp', 'gd.epochs=2', 'rurk.epochs=2', '--train-epochs', '8', '--taus', '0', '0.2', '--c', '5',
        '--seeds', '0', '1', '--threads', '1', '--quiet', '--device', 'cpu']

def _numbers(res):
    "Every per-seed number of a results.json (metrics, r_τ curves, per-sample counts), without timings and paths."
    drop = ('seconds', 'model', 'seconds_vs_retrain')
    def row(r):
        out = {k: v for k, v in r.items() if k not in drop}
        out['rk'] = dict(r['rk'], meta={k: v for k, v in r['rk']['meta'].items() if k not in ('batch_size', 'batch_rows', 'grad_batch_size', 'seconds')})  # measured, not results
        return out
    return {n: {s: row(r) for s, r in m['per_seed'].items()} for n, m in res['methods'].items()}

@pytest.fixture(scope='module')
def local_ray():
    if not ray.is_initialized(): ray.init(num_cpus=2, _node_ip_address='127.0.0.1', include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()

BROKEN = """
def broken(model, retain, forget, ctx): raise RuntimeError('boom')
def as_is(model, retain, forget, ctx): return model
"""

def test_ray_equals_local_and_resumes(tmp_path, local_ray):
    assert main(ARGS + ['--out', str(tmp_path/'local'), '--cache', str(tmp_path/'c1')]) == 0
    ray_args = ARGS + ['--executor', 'ray', '--out', str(tmp_path/'ray'), '--cache', str(tmp_path/'c2')]
    assert main(ray_args) == 0
    a, b = (json.loads((tmp_path/d/'results.json').read_text()) for d in ('local', 'ray'))
    assert list(a['methods']) == list(b['methods']) == ['original', 'retrain', 'retrain_2', 'gd', 'rurk']
    assert _numbers(a) == _numbers(b)                                  # every metric and every per-sample count
    rk = b['methods']['rurk']['per_seed']['1']['rk']
    assert rk['k_unlearned'] == a['methods']['rurk']['per_seed']['1']['rk']['k_unlearned'] and not any(v is None or math.isnan(v) for v in rk['r'])
    assert {p.name for p in (tmp_path/'ray'/'models').iterdir()} == {p.name for p in (tmp_path/'local'/'models').iterdir()}
    # the shared cache holds each reference model once per seed
    assert sorted(p.name.split('-')[1] for p in (tmp_path/'c2').glob('digits-*.pt') if not p.name.startswith(('digits-gd', 'digits-rurk'))) == ['original'] * 2 + ['retrain'] * 2 + ['retrain_2'] * 2
    # resumed with more methods: finished rows kept; a method's error is reported like a failed method, the others go on
    ns = {'__name__': '__main__'}; exec(BROKEN, ns)   # methods of the user's session (as in a notebook): Ray ships them to the workers
    register('broken_ray', 'always fails (test)')(ns['broken']); register('as_is_ray', 'changes nothing (test)')(ns['as_is'])
    try:
        assert main(['--methods', 'gd', 'rurk', 'broken_ray', 'as_is_ray'] + ray_args[3:] + ['--resume']) == 1
        res = json.loads((tmp_path/'ray'/'results.json').read_text())
        assert res['failures'] == {'broken_ray': {'0': 'RuntimeError: boom', '1': 'RuntimeError: boom'}}
        assert list(res['methods']) == ['original', 'retrain', 'retrain_2', 'gd', 'rurk', 'as_is_ray']
        assert _numbers(res)['as_is_ray']['1']['RA'] == _numbers(res)['original']['1']['RA']
        assert json.dumps(res['methods']['gd']['per_seed']) == json.dumps(b['methods']['gd']['per_seed'])   # kept, not recomputed (timings included)
    finally:
        for m in ('broken_ray', 'as_is_ray'): METHODS.pop(m, None)

POP = ['--methods', 'gd', '--hp', 'gd.epochs=2', '--train-epochs', '4', '--taus', '0', '0.2', '--c', '3', '--models', '3',
       '--no-mia', '--no-relearn', '--threads', '1', '--quiet', '--device', 'cpu']

def test_ray_population_equals_local(tmp_path, local_ray):
    "--models N on Ray: one task per member, the same members (weights, hence confidences) as the local executor's."
    import numpy as np
    assert main(POP + ['--out', str(tmp_path/'local'), '--cache', str(tmp_path/'c1')]) == 0
    assert main(POP + ['--executor', 'ray', '--out', str(tmp_path/'ray'), '--cache', str(tmp_path/'c2')]) == 0
    a, b = (json.loads((tmp_path/d/'results.json').read_text())['population']['0'] for d in ('local', 'ray'))
    assert a['members'] == b['members'] and a['settings'] == b['settings'] and b['trained'] == 3 * 2 + 3
    za, zb = (np.load(tmp_path/d/'population'/'seed0.npz', allow_pickle=False) for d in ('local', 'ray'))
    assert set(za.files) == set(zb.files)
    for k in za.files: np.testing.assert_allclose(za[k], zb[k], atol=1e-4, err_msg=k)
    n = [len(list((tmp_path/c).glob('digits-gd-*.pt'))) for c in ('c1', 'c2')]
    assert n == [4, 4]   # the study's row and the 3 members, each once in the shared cache

def test_ray_interrupt(tmp_path, local_ray, monkeypatch):
    "Ctrl-C (here: raised at the first finished row) cancels the tasks, shuts down the Ray instance the run started, and keeps what finished."
    import rurk.ray_executor
    monkeypatch.setattr(rurk.ray_executor, '_ray_init', lambda address: True)   # as if the run had started this instance (it is the last test here)
    def log(line):
        if 'original:' in line: raise KeyboardInterrupt
    cfg = RunConfig(methods=['gd'], hp={'gd': {'epochs': 1}}, train_epochs=2, taus=[0.0], c=2, mia=False, relearn=False)
    with pytest.raises(KeyboardInterrupt): run_experiment(cfg, tmp_path/'o', tmp_path/'c', progress=False, log=log, executor='ray', threads=1)
    assert not ray.is_initialized()
    kept = json.loads((tmp_path/'o'/'results.json').read_text())['methods']   # the rows finished before the interrupt, the last one included
    assert 'original' in kept and set(kept) <= {'original', 'retrain', 'retrain_2', 'gd'} and all('RA' in m['per_seed']['0'] for m in kept.values())

def test_ray_cli_errors(capsys):
    with pytest.raises(SystemExit) as e: main(['--ray-address', '127.0.0.1:1', '--quiet'])
    assert e.value.code == 2 and '--ray-address is for --executor ray' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: main(['--executor', 'spark', '--quiet'])
    assert e.value.code == 2 and "invalid choice: 'spark'" in capsys.readouterr().err
