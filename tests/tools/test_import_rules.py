"""The layering of DESIGN holds: a stage package imports only packages before it.

Every module under src/ptychopinn is parsed with ast (imports inside functions included); a
top-level private module (``_io``, ``_config``, ``_observe`` ...) and ``errors`` may be imported
by anyone, ``cli`` may import everything, and nothing imports ``cli``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "ptychopinn"
ORDER = ("physics", "data", "model", "training", "inference", "evaluation", "iterative", "telemetry", "studies")


def imported_packages(path: Path, src: Path = SRC) -> set[tuple[str, int]]:
    """(first component under ptychopinn, line) of every ptychopinn import in a module."""
    rel = path.relative_to(src.parent).with_suffix("").parts  # ('ptychopinn', 'pkg', 'mod')
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                names = [".".join(base + ([node.module] if node.module else []))]
                if not node.module:
                    names = [".".join(base + [a.name]) for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        out |= {(n.split(".")[1], node.lineno) for n in names if n.startswith("ptychopinn.")}
    return out


def violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).parts
        pkg = parts[0] if len(parts) > 1 else None  # None: a top-level module
        for target, line in imported_packages(path, src):
            if target == pkg or (target not in ORDER and target != "cli"):
                continue  # same package, or a top-level module (_io, errors, ...)
            where = f"{path.relative_to(src)}:{line} imports ptychopinn.{target}"
            if target == "cli" and pkg != "cli" and path.name != "__main__.py":
                bad.append(where + " (nothing imports the CLI)")
            elif pkg is None and target != "cli" and path.name != "__init__.py":
                bad.append(where + " (top-level modules import no stage package)")
            elif pkg in ORDER and target in ORDER and ORDER.index(target) > ORDER.index(pkg):
                bad.append(where + f" (a later stage than {pkg})")
    return bad


def test_no_package_imports_a_later_stage():
    assert violations() == []


def test_the_check_fails_on_a_violation(tmp_path):
    root = tmp_path / "ptychopinn"
    for pkg, text in (("physics", "from ptychopinn.data.contract import load_dataset\n"),
                      ("training", "def f():\n    from ptychopinn.telemetry import observers\n"),
                      ("data", "from ptychopinn.physics import dose\nfrom ptychopinn._io import to_plain\n"),
                      ("telemetry", "from ..training import bundle\n")):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "m.py").write_text(text)
    found = violations(root)
    assert len(found) == 2
    assert found[0].startswith("physics/m.py:1 imports ptychopinn.data")
    assert found[1].startswith("training/m.py:2 imports ptychopinn.telemetry")


def test_library_code_never_selects_a_matplotlib_backend():
    """``matplotlib.use`` changes the backend of the caller's whole process (e.g. a notebook)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("matplotlib", "mpl")):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{path.relative_to(SRC)}:{node.lineno} (pyplot)" for n in names if n == "matplotlib.pyplot"]
    assert offenders == []
