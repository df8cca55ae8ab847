"The numbers of README.md and of the notebooks' prose are those of the stored run outputs (`rurk-figures --check`)."
import json, re, subprocess, sys
from pathlib import Path
from rurk.figures import targets, MARK

ROOT = Path(__file__).resolve().parents[1]


def test_figures_match_stored_outputs():
    p = subprocess.run([sys.executable, '-c', 'import sys; from rurk.figures import main; sys.exit(main())', '--check'],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, f"rurk-figures --check: {p.stdout}{p.stderr} (run `rurk-figures` and commit the files)"


def _texts():
    "(file, markdown text) for README.md and every markdown cell with a marker."
    for f in targets(ROOT):
        if f.suffix != '.ipynb':
            yield f, f.read_text()
            continue
        for c in json.loads(f.read_text())['cells']:
            if c['cell_type'] == 'markdown': yield f, ''.join(c['source'])


def test_there_are_markers():
    n = sum(len(MARK.findall(t)) for _, t in _texts())
    assert n >= 50, f"only {n} markers: the figures are not generated"


def test_no_inline_marker_starts_a_line():
    # a line that starts with an HTML comment starts an HTML block in Markdown and breaks the paragraph
    bad = [(f.name, l[:60]) for f, t in _texts() for l in t.splitlines()
           if l.startswith('<!-- fig ') and not re.fullmatch(r'<!-- fig [^>]*-->', l)]
    assert not bad, bad
