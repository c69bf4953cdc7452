"""The README and docs/ as a newcomer reads them: every relative link and image resolves, every
`python` block in docs/ runs or is marked as a sketch (the README's run in test_readme.py), and
no line speaks of how the work on the software is organised instead of the software."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img[^>]*\bsrc=\"([^\"]+)\"")
BLOCK = re.compile(r"(<!-- not run:[^>]*-->\n)?^```python\n(.*?)^```", re.S | re.M)
WORKFLOW = re.compile(
    r"\bsessions? \d|\bissue #?\d|\bthe issue\b|\bissue's\b|DESIGN\.md|\bthis change\b|\bwave-\d|"
    r"\bstop \d+\b|\bthe design's\b|\bhand-off\b", re.I)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_images_resolve(page):
    missing = []
    for match in LINK.finditer(page.read_text()):
        target = (match.group(1) or match.group(2)).split("#")[0]
        if not target or re.match(r"[a-z]+:", target):
            continue
        if not (page.parent / target).exists():
            missing.append(target)
    assert not missing, f"{page.name}: links to nothing: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_line_speaks_of_the_work_instead_of_the_software(page):
    lines = [f"{n}: {line}" for n, line in enumerate(page.read_text().splitlines(), 1) if WORKFLOW.search(line)]
    assert not lines, f"{page.name}:\n" + "\n".join(lines)


def test_docs_python_blocks_run_or_say_they_are_sketches(tmp_path):
    for page in PAGES[1:]:
        for n, (marker, code) in enumerate(BLOCK.findall(page.read_text())):
            if marker:
                compile(code, f"{page.name}[{n}]", "exec")  # a sketch still parses
                continue
            script = tmp_path / f"{page.stem}_{n}.py"
            script.write_text(code)
            proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
            assert proc.returncode == 0, f"{page.name} block {n}:\n{proc.stderr[-3000:]}"


CITED_PATH = re.compile(r"(?<![/\w])((?:rnn_monitor|tb_plugin|benchmarks|examples|tests|docs)/[\w./-]*\w\.(?:py|js|md|css|json))\b")
CITED_MODULE = re.compile(r"\b(rnn_monitor(?:\.\w+)+)")
SOURCES = PAGES + sorted(p for folder in ("rnn_monitor", "tb_plugin", "benchmarks", "examples", "tests")
                         for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".js"))


def _module_cites_nothing(dotted: str) -> bool:
    """`rnn_monitor.a.b.name`: the longest prefix that is a module or package, and the next part
    (if any) a name that its file defines or imports."""
    parts, path = dotted.split("."), ROOT
    for i, part in enumerate(parts):
        if (path / part).is_dir():
            path = path / part
            continue
        if (path / f"{part}.py").exists():
            path, i = path / f"{part}.py", i + 1
        rest = parts[i:]
        if path.is_dir():
            path = path / "__init__.py"
        return bool(rest) and not re.search(rf"\b{re.escape(rest[0])}\b", path.read_text())
    return False


def test_every_cited_file_and_module_exists():
    """Paths (`rnn_monitor/probe/graph.py`) and modules (`rnn_monitor.stats.gradients`) named in the
    docs, docstrings and comments exist, so a reader who follows one finds it."""
    missing = []
    for source in SOURCES:
        text = source.read_text()
        missing += [f"{source.relative_to(ROOT)}: {p}" for p in set(CITED_PATH.findall(text))
                    if not (ROOT / p).exists() and "*" not in p]
        missing += [f"{source.relative_to(ROOT)}: {m}" for m in set(CITED_MODULE.findall(text))
                    if _module_cites_nothing(m)]
    assert not missing, "cited but not there:\n" + "\n".join(sorted(missing))
