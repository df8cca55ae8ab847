"The paper's CIFAR protocols end to end through `rurk-run`, on a tiny data set written in CIFAR-10's own format."
import json
from unittest.mock import patch
import pytest
from rurk.data import write_cifar_fixture
from rurk.run import main

# torchvision checks the md5 sums of the real CIFAR files even with download=False; the fixture is not the real data.
no_md5 = patch('torchvision.datasets.cifar.check_integrity', lambda *a, **k: True)

@pytest.mark.parametrize('dataset,data_args', [
    ('cifar5', ['n_train=12', 'n_test=6', 'n_forget=6']),
    ('cifar10', ['n_train=5']),
])
def test_cifar_protocol_end_to_end(tmp_path, dataset, data_args):
    write_cifar_fixture(tmp_path/'data', n_per_class=4, n_test_per_class=6)
    out = tmp_path/'out'
    args = ['--dataset', dataset, '--data-root', str(tmp_path/'data'), '--data-arg', *data_args, '--methods', 'gd', 'rurk',
            '--hp', 'gd.epochs=1', 'rurk.epochs=1', '--train-epochs', '1', '--taus', '0', '0.03', '--c', '2', '--no-relearn', '--no-noise-floor', '--quiet',
            '--out', str(out), '--cache', str(tmp_path/'cache'), '--device', 'cpu']
    with no_md5: rc = main(args)
    assert rc == 0
    res = json.loads((out/'results.json').read_text())
    assert res['config']['dataset'] == dataset and res['failures'] == {}
    assert res['tau_main'] == 0.03   # the paper's main τ on CIFAR
    assert res['methods']['rurk']['per_seed']['0']['hp']['tau'] == 0.03
    assert list(res['methods']) == ['original', 'retrain', 'gd', 'rurk'] and res['config']['noise_floor'] is False  # no second Re-train asked for
    assert res['reference']['0']['original']['path'].split('/')[-1].startswith(f'{dataset}-original')

def test_missing_cifar_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(['--dataset', 'cifar5', '--data-root', str(tmp_path), '--methods', 'gd', '--quiet', '--out', str(tmp_path/'o'), '--cache', str(tmp_path/'c')])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'CIFAR-10 not found' in err and '--download' in err
    assert not (tmp_path/'c').exists()
