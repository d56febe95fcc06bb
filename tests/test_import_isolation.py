"""The manual engine must stand alone: importing it never imports torch."""

import subprocess
import sys


def test_importing_manual_does_not_import_torch() -> None:
    code = (
        "import sys, manual, manual.network, manual.registry, manual.spec, manual.data\n"
        "from manual.ops import classification_losses, linear, piecewise, regression_losses\n"
        "from manual.ops import smooth, softmax\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_manual_sources_import_only_numpy_and_the_standard_library() -> None:
    import ast
    from pathlib import Path

    import manual

    allowed = set(sys.stdlib_module_names) | {"numpy", "manual"}
    root = Path(manual.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
