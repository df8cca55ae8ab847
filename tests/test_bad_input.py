"""The bad-input corpus: every class of bad input of the public API and of `rurk-run` is refused before any work, with a
`ValueError`/`TypeError` whose message names the argument; the CLI exits with code 2 and a two-line message within seconds.
Good inputs of other kinds (NumPy numbers, 0-d tensors, float64 data) are accepted. Interruptions (Ctrl-C, SIGKILL) leave
valid results and a usable cache."""
import json, os, shutil, signal, subprocess, sys, time
import numpy as np, pytest, torch, torch.nn as nn
import rurk
from conftest import ROOT
from rurk.data import digits_scenario, validate_split, Scenario
from rurk.models import SmallCNN
from rurk.perturb import perturb
from rurk.residual import residual_knowledge
from rurk.run import main
from rurk.methods import unlearn


@pytest.fixture(scope='module')
def setup():
    "The digits, and two quickly trained models (so that counts are not all zero)."
    from rurk.train import fit, seed_everything
    scn = digits_scenario()
    seed_everything(0); m = fit(SmallCNN(), *scn.train, epochs=4, progress=False)
    seed_everything(1); a = fit(SmallCNN(), *scn.retain, epochs=4, progress=False)
    return scn, m, a


def test_version():
    assert isinstance(rurk.__version__, str) and rurk.__version__.count('.') == 2


class Tuple(nn.Module):
    def __init__(self): super().__init__(); self.m = SmallCNN()
    def forward(self, x): return self.m(x), x

class Dict(Tuple):
    def forward(self, x): return {'logits': self.m(x)}

class Extra(Tuple):
    def forward(self, x): return self.m(x)[..., None]

class OneLogit(nn.Module):
    def __init__(self): super().__init__(); self.lin = nn.Linear(64, 1)
    def forward(self, x): return self.lin(x.flatten(1))


def _nan(x, v=float('nan')):
    x = x.clone(); x.view(-1)[7] = v; return x

# (what, kwargs overriding the good call, exception type, text the message must contain)
RK_CASES = [
    ('tau negative', dict(taus=[0.1, -0.01]), ValueError, 'taus[1] must be ≥ 0'),
    ('tau nan', dict(taus=[float('nan')]), ValueError, 'taus[0] must be a finite number'),
    ('tau inf', dict(taus=float('inf')), ValueError, 'taus[0] must be a finite number'),
    ('tau empty', dict(taus=[]), ValueError, 'taus is empty'),
    ('tau string', dict(taus=['0.1']), TypeError, "taus[0] must be a number, got '0.1'"),
    ('tau bool', dict(taus=[True]), TypeError, 'taus[0] must be a number, got the bool'),
    ('tau None', dict(taus=None), TypeError, 'taus must be a number or a list'),
    ('c zero', dict(c=0), ValueError, 'c (draws per sample) must be an integer ≥ 1'),
    ('c negative', dict(c=-3), ValueError, 'c (draws per sample) must be an integer ≥ 1'),
    ('c float', dict(c=2.5), TypeError, 'c (draws per sample) must be an integer'),
    ('c bool', dict(c=True), TypeError, 'c (draws per sample) must be a number, got the bool'),
    ('c string', dict(c='10'), TypeError, 'c (draws per sample) must be a number'),
    ('c numpy float', dict(c=np.float64(3.0)), TypeError, 'c (draws per sample) must be an integer'),
    ('batch size zero', dict(batch_size=0), ValueError, 'batch_size must be an integer ≥ 1'),
    ('batch size bool', dict(batch_size=False), TypeError, 'batch_size must be a number, got the bool'),
    ('zero policy', dict(zero='skip'), ValueError, 'unknown zero-denominator policy'),
    ('attack', dict(attack='deepfool'), ValueError, "unknown attack 'deepfool'"),
    ('channels_last string', dict(channels_last='yes'), TypeError, "channels_last must be True, False or None (automatic), got 'yes'"),
    ('channels_last int', dict(channels_last=1), TypeError, 'channels_last must be True, False or None (automatic), got 1'),
]

@pytest.mark.parametrize('what,kw,exc,msg', RK_CASES, ids=[c[0] for c in RK_CASES])
def test_estimator_settings(setup, what, kw, exc, msg):
    scn, m, a = setup
    with pytest.raises(exc) as e: residual_knowledge(m, a, *scn.forget, **{'taus': [0.1], 'c': 2, **kw})
    assert msg in str(e.value), str(e.value)


def data_cases(scn):
    x, y = scn.forget
    return [
        ('x nan', (x.clone().fill_(float('nan')), y), ValueError, 'forget x holds 4480 NaN'),
        ('x one nan', (_nan(x), y), ValueError, 'forget x holds 1 NaN and 0 infinite values'),
        ('x inf', (_nan(x, float('inf')), y), ValueError, 'forget x holds 0 NaN and 1 infinite values'),
        ('x 0..255', (x * 255, y), ValueError, 'forget x must be pixels in [0, 1]'),
        ('x standardised', (x - 0.5, y), ValueError, 'forget x must be pixels in [0, 1]'),
        ('x uint8', ((x * 255).to(torch.uint8), y), TypeError, 'divide by 255'),
        ('x int', (x.long(), y), TypeError, 'forget x must hold floating-point values'),
        ('x empty', (x[:0], y[:0]), ValueError, 'is empty'),
        ('x 1-d', (x[:, 0, 0, 0], y), ValueError, 'forget x must have a sample dimension'),
        ('x list', (x.tolist(), y), TypeError, 'forget x must be a tensor'),
        ('y float', (x, y.float()), TypeError, 'forget y must be a 1-d tensor of integer labels'),
        ('y bool', (x, y == 8), TypeError, 'forget y must be a 1-d tensor of integer labels'),
        ('y 2-d', (x, y[:, None]), TypeError, 'forget y must be a 1-d tensor of integer labels'),
        ('y short', (x, y[:-1]), ValueError, 'forget y has 69 labels for 70 samples'),
        ('y too large', (x, y + 10), ValueError, "forget y must lie in [0, 10) (the model's classes)"),
        ('y negative', (x, y - 9), ValueError, 'forget y must lie in [0, 10)'),
    ]

def test_estimator_data(setup):
    scn, m, a = setup
    for what, (x, y), exc, msg in data_cases(scn):
        with pytest.raises(exc) as e: residual_knowledge(m, a, x, y, [0.1], c=2)
        assert msg in str(e.value), (what, str(e.value))


def test_estimator_models(setup):
    scn, m, a = setup
    for what, (um, am), exc, msg in [
            ('class counts', (m, SmallCNN(n_classes=3)), ValueError, 'different numbers of classes: [10, 3]'),
            ('tuple output', (Tuple(), a), TypeError, 'the unlearned model must return a tensor of logits (n, n_classes), got a tuple'),
            ('dict output', (m, Dict()), TypeError, 'the retrained model must return a tensor of logits (n, n_classes), got a dict'),
            ('(n, k, 1) output', (Extra(), a), ValueError, 'must return logits of shape (n, n_classes), got (2, 10, 1)'),
            ('single logit', (OneLogit(), OneLogit()), ValueError, '1 logit per input'),
            ('not a module', ('gd', a), TypeError, 'the unlearned model must be a torch.nn.Module, got str')]:
        with pytest.raises(exc) as e: residual_knowledge(um, am, *scn.forget, [0.1], c=2)
        assert msg in str(e.value), (what, str(e.value))


def test_estimator_accepts_other_number_and_data_types(setup):
    scn, m, a = setup
    ref = residual_knowledge(m, a, *scn.forget, [0.0, 0.1], c=3)
    for kw in [dict(taus=np.array([0.0, 0.1]), c=np.int64(3)), dict(taus=[torch.tensor(0.0), np.float32(0.1)], c=torch.tensor(3)),
               dict(taus=[0, 0.1], c=3, batch_size=np.int32(256))]:
        r = residual_knowledge(m, a, *scn.forget, **kw)
        assert torch.equal(r.k_unlearned, ref.k_unlearned) and r.taus == pytest.approx([0.0, 0.1])
    assert ref.k_unlearned.sum() > 0
    r = residual_knowledge(m, a, scn.forget[0].double().numpy(), scn.forget[1].numpy(), [0.0, 0.1], c=3)  # scikit-learn style arrays
    assert torch.equal(r.k_retrained, ref.k_retrained)


def test_estimator_restores_each_submodules_mode(setup):
    scn, _, a = setup
    m = SmallCNN().train(); m[1][1].eval()  # one frozen BatchNorm layer
    residual_knowledge(m, a, *scn.forget, [0.1], c=2)
    assert m.training and not m[1][1].training and m[2][1].training


UNLEARN_CASES = [
    ('unknown method', ('forgetify', {}), ValueError, "unknown unlearning method 'forgetify'"),
    ('unknown hyper-parameter', ('rurk', dict(lambda_x=1)), ValueError, "rurk has no hyper-parameter ['lambda_x']"),
    ('string value', ('rurk', dict(lambda_f='abc')), TypeError, "rurk.lambda_f must be a number, got 'abc'"),
    ('float for int', ('gd', dict(epochs=1.5)), TypeError, 'gd.epochs must be an integer, got 1.5'),
    ('bool for float', ('gd', dict(lr=True)), TypeError, 'gd.lr must be a number, got the bool True'),
    ('nan value', ('gd', dict(lr=float('nan'))), ValueError, 'gd.lr must be a finite number'),
    ('rurk tau nan', ('rurk', dict(tau=float('nan'))), ValueError, 'rurk.tau must be a finite number'),
    ('rurk tau negative', ('rurk', dict(tau=-0.1)), ValueError, 'rurk.tau must be ≥ 0'),
    ('rurk attack', ('rurk', dict(attack='fgsm')), ValueError, "RURK's vulnerable set is built with one of"),
    ('bn_stats', ('ga', dict(bn_stats='forget')), ValueError, 'bn_stats must be one of'),
    ('bool for str', ('rurk', dict(attack=True)), TypeError, 'rurk.attack must be a string'),
]

@pytest.mark.parametrize('what,call,exc,msg', UNLEARN_CASES, ids=[c[0] for c in UNLEARN_CASES])
def test_unlearn_settings(setup, what, call, exc, msg):
    scn, m, _ = setup
    name, hp = call
    with pytest.raises(exc) as e: unlearn(name, m, scn.retain, scn.forget, progress=False, **hp)
    assert msg in str(e.value), str(e.value)


@pytest.mark.parametrize('method', ['gd', 'rurk', 'ssd', 'random_labels'])
def test_unlearn_data(setup, method):
    "Every class of bad data, for methods of each kind (fine-tuning, perturbing, closed-form, mixed batches)."
    scn, m, _ = setup
    for what, forget, exc, msg in data_cases(scn):
        if method != 'rurk' and 'pixels in [0, 1]' in msg: continue  # only methods that perturb need pixels in [0, 1]
        with pytest.raises(exc) as e: unlearn(method, m, scn.retain, forget, progress=False)
        assert msg in str(e.value), (method, what, str(e.value))
    xr, yr = scn.retain
    for what, retain, exc, msg in [('retain nan', (_nan(xr), yr), ValueError, 'retain x holds 1 NaN'),
                                   ('retain empty', (xr[:0], yr[:0]), ValueError, 'the retain set is empty'),
                                   ('retain labels', (xr, yr + 10), ValueError, 'retain y must lie in [0, 10)'),
                                   ('retain not a pair', (xr,), TypeError, 'retain must be an (x, y) pair'),
                                   ('shapes differ', (torch.rand(5, 1, 9, 9), yr[:5]), ValueError, 'forget inputs have shape (1, 8, 8), expected (1, 9, 9)')]:
        with pytest.raises(exc) as e: unlearn(method, m, retain, scn.forget, progress=False)
        assert msg in str(e.value), (method, what, str(e.value))


def test_unlearn_accepts_float64_and_numpy_numbers(setup):
    scn, m, _ = setup
    a = unlearn('gd', m, scn.retain, scn.forget, epochs=1, progress=False)
    b = unlearn('gd', m, (scn.retain[0].double(), scn.retain[1]), (scn.forget[0].double(), scn.forget[1]), epochs=np.int64(1),
                lr=np.float32(0.01), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unlearn_accepts_other_scales_where_nothing_is_clamped(setup):
    scn, m, _ = setup
    unlearn('gd', m, (scn.retain[0] * 255, scn.retain[1]), (scn.forget[0] * 255, scn.forget[1]), epochs=1, progress=False)


def test_perturb(setup):
    scn, m, _ = setup
    x, y = scn.forget
    for args, kw, exc, msg in [((_nan(x), y, 0.1), {}, ValueError, 'x holds 1 NaN'), ((x * 255, y, 0.1), {}, ValueError, 'x must be pixels in [0, 1]'),
                               ((x, y, -0.1), {}, ValueError, 'τ must be ≥ 0'), ((x, y, float('nan')), {}, ValueError, 'τ must be a finite number'),
                               ((x, y + 10, 0.1), dict(attack='fgsm', model=m), ValueError, 'y must lie in [0, 10)'),
                               ((x, y, 0.1), dict(attack='fgsm'), ValueError, 'needs the model')]:
        with pytest.raises(exc) as e: perturb(*args, **kw)
        assert msg in str(e.value), str(e.value)
    with pytest.warns(UserWarning, match='pixel units'): perturb(x, y, 8)


def test_split_errors():
    for f, r, msg in [([], [1, 2], 'forget set is empty'), ([1, 2], [2, 3], 'overlap'), ([1, 99], [2], 'training set')]:
        with pytest.raises(ValueError) as e: validate_split(10, f, r)
        assert msg in str(e.value)
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError) as e: Scenario('t', x, y, x, y, forget_idx=torch.arange(6), n_classes=2)
    assert 'retain set is empty' in str(e.value)
    with pytest.raises(ValueError) as e: Scenario('t', x, y[:5], x, y, forget_idx=[0], n_classes=2)
    assert 'one label per sample' in str(e.value)


# --- rurk-run ---------------------------------------------------------------------------------------------------------

def cli_cases(tmp):
    f = tmp/'a_file'; f.write_text('not a folder')
    return [
        (['--methods', 'scrub2'], "unknown unlearning method 'scrub2'"), (['--methods'], 'expected at least one argument'),
        (['--taus', '-1'], 'taus[0] must be ≥ 0'), (['--taus', 'nan'], 'taus[0] must be a finite number'), (['--taus', 'x'], "invalid float value: 'x'"),
        (['--c', '0'], 'c (draws per sample) must be an integer ≥ 1'), (['--c', '2.5'], "invalid int value: '2.5'"),
        (['--seeds', '1', '1'], 'repeat a seed'), (['--seeds', '-1'], 'seeds[0] must be an integer ≥ 0'),
        (['--train-epochs', '0'], 'train_epochs must be an integer ≥ 1'), (['--forget-class', '-2'], 'forget_class must be an integer ≥ 0'),
        (['--hp', 'rurk.lambda_f=abc'], "rurk.lambda_f must be a number, got 'abc'"), (['--hp', 'nope.x=1'], "'nope' is not a method"),
        (['--hp', 'gd.momentumm=0.5', '--methods', 'gd'], "gd has no hyper-parameter ['momentumm']"),
        (['--hp', 'gd.epochs=1.5', '--methods', 'gd'], 'gd.epochs must be an integer, got 1.5'),
        (['--hp', 'ssd.alpha=1', '--methods', 'gd'], "hyper-parameters given for 'ssd', which is not among the methods run"),
        (['--hp', 'lr=3'], '--hp takes METHOD.NAME=VALUE'), (['--attack', 'cw'], "unknown attack 'cw'"),
        (['--bn-stats', 'forget'], "invalid choice: 'forget'"), (['--zero', 'drop'], "invalid choice: 'drop'"),
        (['--dataset', 'mnist'], "invalid choice: 'mnist'"), (['--dataset', 'cifar10'], '--data-root'),
        (['--dataset', 'cifar10', '--data-root', str(tmp/'nowhere')], 'does not exist'),
        (['--data-arg', 'n_train=5'], "the digits scenario has no argument ['n_train']"), (['--data-arg', 'forget_frac=half'], "forget_frac must be a number"),
        (['--out', str(f)], 'is a file, not a folder'), (['--out', str(f/'sub')], 'is a file, not a folder'),
        (['--device', 'tpu'], 'device'),
        (['--models', '1'], 'a population needs at least 2 models'), (['--models', '-3'], 'models must be an integer ≥ 0'),
        (['--models', '4', '--pop-attacks', 'cw'], "unknown attack 'cw'"), (['--models', '4', '--pop-draws', '0'], 'pop_draws must be'),
    ]

def test_cli_refuses_bad_arguments_in_two_lines(tmp_path, capsys):
    for args, msg in cli_cases(tmp_path):
        t = time.perf_counter()
        with pytest.raises(SystemExit) as e: main([*args, '--cache', str(tmp_path/'cache'), '--quiet'] + ([] if '--out' in args else ['--out', str(tmp_path/'o')]))
        err = capsys.readouterr().err
        assert e.value.code == 2, (args, e.value.code, err)
        assert msg in err and 'usage:' not in err and len(err.strip().splitlines()) == 2, (args, err)
        assert time.perf_counter() - t < 5, (args, 'took too long to refuse')
    assert not (tmp_path/'cache').exists() and not (tmp_path/'o').exists()  # refused before any training or output


def test_cli_process_exit_code(tmp_path):
    "The real console script: exit code 2, two lines on stderr, within seconds (most of which is importing torch)."
    exe = shutil.which('rurk-run'); assert exe
    for args, msg in [(['--hp', 'rurk.lambda_f=abc'], 'rurk.lambda_f must be a number'), (['--out', str(ROOT/'README.md')], 'is a file, not a folder')]:
        t = time.perf_counter()
        r = subprocess.run([exe, *args, '--cache', str(tmp_path/'c')], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 2, r.stderr
        assert time.perf_counter() - t < 30


RUN = ['--methods', 'gd', 'ga', '--taus', '0', '0.1', '--c', '4', '--train-epochs', '4', '--no-relearn', '--quiet']

ENV1 = dict(os.environ, OMP_NUM_THREADS='1')  # every run of a comparison with the same thread count (float sums depend on it)

def _start(out, cache):
    return subprocess.Popen([shutil.which('rurk-run'), *RUN, '--out', str(out), '--cache', str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV1,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C reaches it even when the tests run as a background job

def _check_leftovers(out, cache):
    "results.json (if any) parses and is complete for what it lists; every cached model loads and matches its checksum."
    from rurk.train import state_checksum
    if (out/'results.json').exists():
        res = json.loads((out/'results.json').read_text())
        for name, m in res['methods'].items():
            for seed, d in m['per_seed'].items(): assert {'RA', 'UA', 'TA', 'rk'} <= set(d), (name, seed)
    for p in cache.glob('*.pt'):
        ck = torch.load(p, weights_only=True)
        assert state_checksum(ck['state_dict']) == ck['checksum'], p


def test_sigkill_at_any_moment_leaves_valid_results_and_cache(tmp_path):
    out, cache = tmp_path/'out', tmp_path/'cache'
    for delay in (1.5, 4.0, 7.0, 10.0):
        p = _start(out, cache)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL); p.communicate(timeout=30)
        _check_leftovers(out, cache)
    r = subprocess.run([shutil.which('rurk-run'), *RUN, '--out', str(out), '--cache', str(cache), '--resume'], capture_output=True, text=True, timeout=300, env=ENV1)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = subprocess.run([shutil.which('rurk-run'), *RUN, '--out', str(tmp_path/'ref'), '--cache', str(tmp_path/'cache_ref')], capture_output=True, text=True, timeout=300, env=ENV1)
    assert ref.returncode == 0, ref.stderr[-3000:]
    a, b = (json.loads((d/'results.json').read_text()) for d in (out, tmp_path/'ref'))
    assert list(a['methods']) == list(b['methods'])
    for name in a['methods']:
        for k in ('RA', 'UA', 'TA', 'MIA'): assert a['methods'][name][k] == b['methods'][name][k], (name, k)
        assert a['methods'][name]['per_seed']['0']['rk']['k_unlearned'] == b['methods'][name]['per_seed']['0']['rk']['k_unlearned']


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    out, cache = tmp_path/'out', tmp_path/'cache'
    p = _start(out, cache)
    deadline = time.time() + 120
    while time.time() < deadline and not (out/'results.json').exists(): time.sleep(0.2)  # interrupt once something finished
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert 'Traceback' not in err and '--resume' in err.strip().splitlines()[-1], err[-2000:]
    _check_leftovers(out, cache)
