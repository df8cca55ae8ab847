"""`rurk-audit` as a user runs it on files made without rurk: exported programs (fixed batch), TorchScript, state_dicts
with `--arch` (rurk's, or the user's own class through `package.module:factory`), data as .pt, .npz or image folders.
Files that would run code when read are refused, and the code does not run (checked by the file its payload would
create); every bad input exits with code 2 and a two-line message before any estimation."""
import io, json, os, shutil, subprocess, sys, time, zipfile, contextlib
import numpy as np, pytest, torch, torch.nn as nn
from pathlib import Path
from conftest import ROOT
from rurk.data import digits_scenario
from rurk.models import make_model
from rurk.train import fit
from rurk.audit import audit_main

PAYLOAD = 'PAYLOAD_RAN'


class Net(nn.Module):
    "A user's own architecture, defined outside rurk (also written to `usernet.py` for `--arch usernet:make`)."
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))
    def forward(self, x): return self.body(x)


class Payload:
    "Unpickling this creates a file: the visible side effect that must not happen."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (os.system, (f'touch {self.path}',))


def trained(model, x, y, seed):
    torch.manual_seed(seed)
    return fit(model, x, y, epochs=8, seed=seed, progress=False).eval()


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    "Models and data written with plain PyTorch/NumPy/PIL, as a user would."
    d = tmp_path_factory.mktemp('audit')
    scn = digits_scenario()
    xf = scn.forget[0]
    u, r, r2 = (trained(make_model('smallcnn', n_classes=10), *xy, s) for xy, s in ((scn.train, 0), (scn.retain, 1),
                                                                                    (scn.retain, 2)))
    torch.export.save(torch.export.export(u, (xf[:16],)), d/'u.pt2')    # fixed batch of 16: 70 forget samples
    torch.export.save(torch.export.export(r, (xf[:16],), dynamic_shapes=({0: torch.export.Dim('b')},)), d/'r.pt2')
    torch.jit.save(torch.jit.script(r2), d/'r2.ts')
    torch.save(u.state_dict(), d/'u_sd.pt')
    torch.save(u, d/'u_whole.pt')
    (d/'usernet.py').write_text("import torch.nn as nn\n"
                                "class Net(nn.Module):\n"
                                "    def __init__(self, num_classes=10):\n"
                                "        super().__init__()\n"
                                "        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))\n"
                                "    def forward(self, x): return self.body(x)\n"
                                "def make(num_classes): return Net(num_classes)\n")
    torch.save(trained(Net(), *scn.train, 3).state_dict(), d/'user_sd.pt')
    torch.save(dict(x=xf, y=scn.forget[1]), d/'forget.pt')
    np.savez(d/'retain.npz', x=scn.retain[0].numpy(), y=scn.retain[1].numpy())
    torch.save(dict(x=scn.test[0], y=scn.test[1]), d/'test.pt')
    from PIL import Image
    for i, (img, lab) in enumerate(zip(xf, scn.forget[1])):
        (d/'imgs'/str(int(lab))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.uint8(img[0].numpy() * 255)).save(d/'imgs'/str(int(lab))/f'{i}.png')
    return d, scn


def audit(d, *args):
    "Run `rurk-audit` in this process: (exit code, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = audit_main([str(a) for a in args])
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()


def base(d, **kw):
    a = dict(unlearned=[d/'u.pt2'], retrained=[d/'r.pt2', d/'r2.ts'], forget=d/'forget.pt', retain=d/'retain.npz',
             test=d/'test.pt', taus=[0, 0.1, 0.3], c=8, out=d/'out')
    a.update(kw)
    args = []
    for k, v in a.items():
        if v is None: continue
        args += [f"--{k.replace('_', '-')}", *(v if isinstance(v, list) else [v])]
    return args


def test_exported_torchscript_and_report(files):
    d, scn = files
    code, out, err = audit(d, *base(d))
    assert code == 0, err
    for word in ('retrain*', 'retrain_2*', 'unlearned', 'RA', 'TA', 'MIA', '95% CI@0.1', 'report.html'):
        assert word in out, word
    res = json.loads((d/'out'/'results.json').read_text())
    assert res['audit']['files']['unlearned'][0]['kind'] == 'exported'
    assert res['audit']['files']['retrained'][1]['kind'] == 'torchscript'
    assert len(res['audit']['files']['forget']['sha256']) == 64
    assert res['audit']['seconds']['read'] > 0.02   # the reading done before the audit starts counts
    row = res['methods']['unlearned']['per_seed']['0']
    assert len(row['rk']['k_unlearned'][0]) == len(scn.forget[1])  # every forget sample, through the fixed batch of 16
    assert res['methods']['retrain']['rk']['r'] == [1.0, 1.0, 1.0]
    assert Path(row['model_file']).is_absolute()  # explore() finds the files from any working folder
    page = (d/'out'/'report.html').read_text()
    assert page.count('<section>') == 7 and page.count('<figure>') == 6
    from rurk.explore import explore   # explore() opens an audit like a rurk-run folder
    box = explore(str(d/'out'))
    assert box.study.methods('gaussian') == ['retrain', 'retrain_2', 'unlearned']


def test_state_dicts_with_arch_and_user_factory(files, monkeypatch):
    d, _ = files
    code, out, err = audit(d, *base(d, unlearned=[d/'u_sd.pt'], out=d/'sd'), '--arch', 'smallcnn', '--num-classes', '10')
    assert code == 0, err
    a, b = (json.loads((d/o/'results.json').read_text())['methods']['unlearned']['rk']['r'] for o in ('out', 'sd'))
    assert a == b   # the state_dict and the exported program of one model give the same numbers
    monkeypatch.syspath_prepend(str(d))
    code, out, err = audit(d, *base(d, unlearned=[d/'user_sd.pt'], retrained=[d/'r.pt2'], out=d/'user', retain=None,
                                    test=None), '--arch', 'usernet:make', '--num-classes', '10')
    assert code == 0, err
    res = json.loads((d/'user'/'results.json').read_text())
    assert 'RA' not in res['methods']['unlearned'] and 'UA' in res['methods']['unlearned']  # no retain set: no RA
    assert 'retrain_2' not in res['methods'] and 'no noise floor' in (d/'user'/'report.html').read_text()


def test_image_folder(files):
    d, _ = files
    code, out, err = audit(d, *base(d, forget=d/'imgs', out=d/'imgs_out'), '--image-size', '8', '--grayscale')
    assert code == 0, err
    code, out, err = audit(d, *base(d, forget=d/'imgs', out=d/'imgs_rgb'))
    assert code == 2 and 'do not fit' in err or 'exported for' in err, err


def test_pickled_model_refused_and_its_code_not_run(files, tmp_path):
    d, _ = files
    mark = tmp_path/PAYLOAD
    torch.save({'weights': Payload(mark)}, tmp_path/'evil.pt')
    torch.save(dict(x=Payload(mark), y=torch.zeros(2)), tmp_path/'evil_data.pt')
    np.savez(tmp_path/'evil.npz', x=np.array([Payload(mark)], dtype=object), y=np.zeros(1))
    cases = [base(d, unlearned=[tmp_path/'evil.pt']), base(d, unlearned=[d/'u_whole.pt']),
             base(d, forget=tmp_path/'evil_data.pt'), base(d, forget=tmp_path/'evil.npz')]
    for args in cases:
        code, out, err = audit(d, *args)
        assert code == 2 and 'unpickle' in err and len(err.strip().splitlines()) == 2, err
        assert not mark.exists(), f"the payload ran: {args}"
    assert 'torch.export.save' in audit(d, *cases[1])[2]   # says how to export the model instead


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        for n in zin.namelist(): zout.writestr(n, change(n, zin.read(n)))


def test_exported_program_attacks_refused(files, tmp_path):
    "An exported program whose weights, sample inputs or graph would run code when read or run by torch.export.load."
    d, _ = files
    mark = tmp_path/PAYLOAD
    buf = io.BytesIO()
    torch.save(Payload(mark), buf)
    evil = buf.getvalue()
    def weights(n, b):
        if n.endswith('model_weights_config.json'):
            c = json.loads(b)
            for v in c['config'].values(): v['use_pickle'] = True
            return json.dumps(c).encode()
        return evil if '/data/weights/weight_' in n else b
    changes = dict(weights=weights, inputs=lambda n, b: evil if 'sample_inputs' in n else b,
                   graph=lambda n, b: b.replace(b'torch.ops.aten.relu_.default', b'torch.os.system') if n.endswith('model.json') else b,
                   shape=lambda n, b: b.replace(b'"s', b'"__import__(\'os\').system(\'touch ' + str(mark).encode() + b'\') or s')
                   if n.endswith('model.json') else b)
    for name, change in changes.items():
        _rewrite(d/'r.pt2', tmp_path/f'{name}.pt2', change)
        code, out, err = audit(d, *base(d, retrained=[tmp_path/f'{name}.pt2']))
        assert code == 2 and len(err.strip().splitlines()) == 2, (name, err)
        assert not mark.exists(), f"the payload ran: {name}"
    # an AOTInductor package inside the archive: compiled code torch.export.load would load into the process
    shutil.copy(d/'r.pt2', tmp_path/'aoti.pt2')
    with zipfile.ZipFile(tmp_path/'aoti.pt2') as z: root = z.namelist()[0].split('/')[0]
    with zipfile.ZipFile(tmp_path/'aoti.pt2', 'a') as z: z.writestr(f'{root}/data/aotinductor/model/model.so', b'\x7fELF')
    code, out, err = audit(d, *base(d, retrained=[tmp_path/'aoti.pt2']))
    assert code == 2 and 'compiled code' in err, err


def test_trust_pickle_reads_whole_model_with_a_warning(files):
    d, _ = files
    with pytest.warns(UserWarning, match='runs code'):
        code, out, err = audit(d, *base(d, unlearned=[d/'u_whole.pt'], out=d/'trusted'), '--trust-pickle')
    assert code == 0, err


def bad_inputs(d, t):
    "(what, arguments, what the message must say): every class of bad input the issue lists."
    t.joinpath('notes.txt').write_text('not a model')
    x = torch.load(d/'forget.pt')['x']
    np.savez(t/'wide.npz', x=np.zeros((4, 1, 9, 9), 'float32'), y=np.zeros(4, int))
    np.savez(t/'pixels.npz', x=x.numpy() * 255, y=np.full(len(x), 8))
    xn = x.clone()
    xn[3, 0, 2, 2] = float('nan')
    torch.save(dict(x=xn, y=torch.full((len(x),), 8)), t/'nan.pt')
    torch.save(dict(x=x, y=torch.full((len(x),), 11)), t/'labels.pt')
    torch.save(dict(x=x[:0], y=torch.zeros(0, dtype=torch.long)), t/'empty.pt')
    torch.save(make_model('smallcnn', n_classes=3).state_dict(), t/'three.pt')
    torch.export.save(torch.export.export(make_model('smallcnn', n_classes=10).eval(), (torch.rand(4, 1, 9, 9),)), t/'nine.pt2')
    (t/'unreadable.pt').write_bytes(b'\x80\x02garbage')
    torch.jit.save(torch.jit.script(Net()), t/'net.ts')   # takes 64 features: 8x8 images only
    return [('missing file', base(d, forget=t/'missing.pt'), 'no such file'),
            ('unreadable file', base(d, unlearned=[t/'unreadable.pt']), 'cannot be read'),
            ('unknown format', base(d, unlearned=[t/'notes.txt']), 'unknown format'),
            ('classes disagree', base(d, retrained=[d/'r.pt2', t/'three.pt'], arch='smallcnn', num_classes=3),
             'disagree on the number of classes'),
            ('input shapes disagree', base(d, retrained=[d/'r.pt2', t/'nine.pt2']), 'disagree on the input shape'),
            ('inputs do not fit', base(d, forget=t/'wide.npz', unlearned=[t/'net.ts'], retrained=[t/'net.ts'], retain=None,
                                       test=None), 'do not fit'),
            ('pixels outside [0, 1]', base(d, forget=t/'pixels.npz'), 'pixels in [0, 1]'),
            ('NaN', base(d, forget=t/'nan.pt'), 'NaN'),
            ('labels out of range', base(d, forget=t/'labels.pt'), '[0, 10)'),
            ('empty forget set', base(d, forget=t/'empty.pt'), 'forget set is empty'),
            ('state_dict without --arch', base(d, unlearned=[d/'u_sd.pt']), '--arch'),
            ('too few retrained for many models', base(d, unlearned=[d/'u.pt2', d/'u.pt2']), 'at least 4 retrained'),
            ('bad τ', base(d, taus=['-0.1']), 'taus[0]')]


def test_bad_inputs_exit_2_in_two_lines_before_work(files, tmp_path):
    d, _ = files
    for what, args, says in bad_inputs(d, tmp_path):
        t = time.perf_counter()
        code, out, err = audit(d, *args, '--out', tmp_path/'o')
        lines = err.strip().splitlines()
        assert code == 2 and says in lines[0] and len(lines) == 2, (what, err)
        assert not (tmp_path/'o'/'results.json').exists() and time.perf_counter() - t < 10, what  # before any work


def test_console_script(files, tmp_path):
    "The installed `rurk-audit`: a bad input in a fresh process, exit code 2 and two lines."
    d, _ = files
    exe = shutil.which('rurk-audit')
    assert exe, "the console script rurk-audit is not installed"
    r = subprocess.run([exe, *map(str, base(d, forget=tmp_path/'missing.pt'))], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 2 and 'no such file' in r.stderr, r.stderr
