"The paper's ImageNet-100 protocol end to end through `rurk-run`, on a tiny image-folder fixture (a few classes of small JPEGs)."
import json
import pytest
from rurk.data import write_imagefolder_fixture
from rurk.run import main
from rurk.config import DEFAULT_METHODS

def test_imagenet100_end_to_end(tmp_path):
    "Every default method, ResNet-50 on 224×224 crops read on demand, with the MIA; 2 classes of 3 images, one epoch each and no second Re-train, to keep it short."
    write_imagefolder_fixture(tmp_path/'in100', n_classes=2, n_train=3, n_val=1, size=(64, 48))
    out = tmp_path/'out'
    epochs = [f'{m}.epochs=1' for m in DEFAULT_METHODS if m != 'retrain']
    args = ['--dataset', 'imagenet100', '--data-root', str(tmp_path/'in100'), '--data-arg', 'workers=0', '--train-epochs', '1',
            '--hp', *epochs, '--taus', '0', '0.03', '--c', '2', '--no-relearn', '--no-noise-floor', '--quiet', '--out', str(out), '--cache', str(tmp_path/'cache'), '--device', 'cpu']
    assert main(args) == 0
    res = json.loads((out/'results.json').read_text())
    assert res['failures'] == {} and res['config']['dataset'] == 'imagenet100'
    assert list(res['methods']) == ['original', 'retrain', *[m for m in DEFAULT_METHODS if m != 'retrain']]
    assert res['tau_main'] == 0.03 and res['methods']['rurk']['per_seed']['0']['hp']['tau'] == 0.03
    ref = res['reference']['0']['original']
    assert ref['path'].split('/')[-1].startswith('imagenet100-original') and ref['cached'] is False
    for m in res['methods'].values():                       # every metric measured, on 2 forget samples with 2 draws each
        s = m['per_seed']['0']
        assert all(k in s for k in ('RA', 'UA', 'TA', 'MIA', 'avg_gap')) and s['rk']['n'] == 2 and len(s['rk']['r']) == 2
    assert not (out/'models').exists()                      # ResNet-50 (94 MB) is not saved by default

@pytest.mark.parametrize('layout,msg', [('empty', 'no train/ or val/ folder'), ('no-val', 'no val/ folder')])
def test_missing_imagenet100_is_a_clear_error(tmp_path, capsys, layout, msg):
    (tmp_path/'d').mkdir()
    if layout == 'no-val': (tmp_path/'d'/'train').mkdir()
    with pytest.raises(SystemExit) as e:
        main(['--dataset', 'imagenet100', '--data-root', str(tmp_path/'d'), '--quiet', '--out', str(tmp_path/'o'), '--cache', str(tmp_path/'c')])
    assert e.value.code == 2 and msg in capsys.readouterr().err and not (tmp_path/'c').exists()
