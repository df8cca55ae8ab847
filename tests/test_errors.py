"Bad inputs get a clear error that names the problem, before any heavy work."
import pytest, torch
import rurk
from rurk.data import digits_scenario, validate_split, Scenario
from rurk.models import SmallCNN
from rurk.residual import residual_knowledge
from rurk.unlearn import unlearn

@pytest.fixture(scope='module')
def setup():
    scn = digits_scenario()
    torch.manual_seed(0)
    return scn, SmallCNN().eval(), SmallCNN().eval()

def test_version():
    assert isinstance(rurk.__version__, str) and rurk.__version__.count('.') == 2

@pytest.mark.parametrize('kw,msg', [
    (dict(taus=[0.1, -0.01]), 'τ must be a finite number ≥ 0'),
    (dict(taus=[float('nan')]), 'τ must be a finite number ≥ 0'),
    (dict(c=0), 'c (draws per sample) must be an integer ≥ 1'),
    (dict(c=2.5), 'c (draws per sample) must be an integer ≥ 1'),
    (dict(attack='deepfool'), "unknown attack 'deepfool'"),
    (dict(zero='skip'), 'unknown zero-denominator policy'),
])
def test_estimator_settings(setup, kw, msg):
    scn, m, a = setup
    with pytest.raises(ValueError, match=None) as e: residual_knowledge(m, a, *scn.forget, **kw)
    assert msg in str(e.value)

def test_estimator_shapes_and_models(setup):
    scn, m, a = setup
    x, y = scn.forget
    cases = [((m, a, x, y[:-1]), 'different lengths'), ((m, a, x[:0], y[:0]), 'forget set is empty'),
             ((m, a, x[0], y), 'different lengths'), ((m, a, x, y.float()), '1-d integer tensor'),
             ((m, SmallCNN(n_classes=3), x, y), 'different numbers of classes: [10, 3]'),
             ((m, a, x * 255, y), 'pixels in [0, 1]'), ((m, a, x, y + 10), 'labels must lie in [0, 10)')]
    for args, msg in cases:
        with pytest.raises(ValueError) as e: residual_knowledge(*args)
        assert msg in str(e.value), (msg, str(e.value))

def test_wrong_input_shape_is_named(setup):
    scn, m, a = setup
    with pytest.raises(ValueError) as e: unlearn('gd', m, scn.retain, (torch.rand(4, 3, 8, 8), scn.forget[1][:4]))
    assert 'expected (1, 8, 8)' in str(e.value)

def test_unlearn_errors(setup):
    scn, m, _ = setup
    with pytest.raises(ValueError) as e: unlearn('forgetify', m, scn.retain, scn.forget)
    assert "unknown unlearning method 'forgetify'" in str(e.value) and "'gd'" in str(e.value) and "'rurk'" in str(e.value)
    with pytest.raises(ValueError) as e: unlearn('gd', m, scn.retain, (scn.x_train[:0], scn.y_train[:0]))
    assert 'forget set is empty' in str(e.value)
    with pytest.raises(ValueError) as e: unlearn('rurk', m, scn.retain, scn.forget, lambda_x=1)
    assert "rurk has no hyper-parameter ['lambda_x']" in str(e.value)

def test_split_errors():
    for f, r, msg in [([], [1, 2], 'forget set is empty'), ([1, 2], [2, 3], 'overlap'), ([1, 99], [2], 'training set')]:
        with pytest.raises(ValueError) as e: validate_split(10, f, r)
        assert msg in str(e.value)
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError) as e: Scenario('t', x, y, x, y, torch.arange(6), 2)
    assert 'retain set is empty' in str(e.value)
    with pytest.raises(ValueError) as e: Scenario('t', x, y[:5], x, y, [0], 2)
    assert 'one label per sample' in str(e.value)
