"""The server's layers: `api` (JSON) and `web` (HTML) sit side by side over `services` and never import
each other; `services` imports neither. Read from the source with `ast`, so an import inside a function
or under TYPE_CHECKING counts too, and a broken layer names the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import dockmesh.server

SERVER = Path(dockmesh.server.__file__).parent
PACKAGE = "dockmesh.server"

# For each layer, the layers it must not import.
FORBIDDEN = {
    "api": ("web",),
    "web": ("api",),
    "services": ("api", "web"),
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> list[tuple[int, list[str]]]:
    """Each import statement of `path`: its line and the absolute names it may bind.

    `from X import Y` may bind X.Y as a submodule (`from dockmesh.server import api`), so both X and X.Y
    are candidates.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.append((node.lineno, [stem] + [f"{stem}.{alias.name}" for alias in node.names]))
    return found


def in_layer(module: str, layer: str) -> bool:
    prefix = f"{PACKAGE}.{layer}"
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path = SERVER) -> list[str]:
    broken: list[str] = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((root / layer).rglob("*.py")):
            for line, modules in imported(path, root):
                for other in banned:
                    hit = next((m for m in modules if in_layer(m, other)), None)
                    if hit:
                        where = path.relative_to(root.parent.parent)
                        broken.append(f"{where}:{line}: server/{layer} imports {hit} (server/{other})")
    return sorted(broken)


def test_api_web_and_services_do_not_import_across_layers() -> None:
    broken = violations()
    assert not broken, "layer violations:\n" + "\n".join(broken)


def test_the_walk_sees_absolute_relative_and_submodule_imports(tmp_path: Path) -> None:
    """The checker itself: each spelling of a forbidden import is caught, an allowed one is not."""
    root = tmp_path / "dockmesh" / "server"
    for layer in ("api", "web/pages", "services"):
        (root / layer).mkdir(parents=True)
        (root / layer / "__init__.py").write_text("")
    (root / "api" / "a.py").write_text("from ..web import session\n")
    (root / "web" / "pages" / "p.py").write_text("import os\n\nfrom dockmesh.server import api\n")
    (root / "services" / "s.py").write_text(
        "from dockmesh.server.services import access\n\ndef f():\n    from ...server.web.render import x\n"
    )
    (root / "services" / "ok.py").write_text(
        "from . import access\nfrom dockmesh.server.errors import ApiError\n"
    )
    assert violations(root) == [
        "dockmesh/server/api/a.py:1: server/api imports dockmesh.server.web (server/web)",
        "dockmesh/server/services/s.py:4: server/services imports dockmesh.server.web.render (server/web)",
        "dockmesh/server/web/pages/p.py:3: server/web imports dockmesh.server.api (server/api)",
    ]
