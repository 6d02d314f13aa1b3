"""Imports run one way: no cycle between the files of one package, and a configuration without torch.

The graph is read from the source (`ast`), every import counted, also those inside a function or
under `if TYPE_CHECKING:`: a lazy import hides a cycle from Python, not from a reader.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hf_seq2seq_rnn", "seq2seq_tools", "training", "chatbot", "benchmarks")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, tree: ast.Module) -> set[str]:
    """Every module name `tree` imports, absolute (relative imports resolved against `module`)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import loading`
    return names


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (the package's own `__init__` left
    out: importing a sibling runs it, which is not an edge a reader follows)."""
    files = {_module_name(path): path for path in (ROOT / package).rglob("*.py")}
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = _imported(module, path.name == "__init__.py", tree)
        graph[module] = {name for name in imported if name in files and name not in (module, package)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as the list of its modules (first repeated last), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            cycle = visit(target, [*path, module])
            if cycle:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return None


def test_cycle_finder_sees_a_cycle():
    """The check itself: a graph with a cycle gives it, one without gives None."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_their_module():
    tree = ast.parse("from .predict import decode\nfrom . import loading\nimport seq2seq_tools.files")
    imported = _imported("training.compare", False, tree)
    assert {"training.predict", "training.loading", "seq2seq_tools.files"} <= imported


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package):
    graph = import_graph(package)
    assert graph, f"no modules found in {package}"
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in {package}: {' -> '.join(cycle)}"


def test_configuration_loads_without_torch():
    """The configuration file runs where torch cannot be imported, as remote code reads it beside
    the weights (the package's `__init__`, which imports the model, not run): it validates and
    refuses bad settings without the attention module."""
    script = f"""
import sys, types
sys.modules["torch"] = None  # `import torch` now raises ImportError; transformers sees no torch
package = types.ModuleType("hf_seq2seq_rnn")
package.__path__ = [{str(ROOT / "hf_seq2seq_rnn")!r}]
sys.modules["hf_seq2seq_rnn"] = package  # the package's __init__ (which imports the model) is not run
from hf_seq2seq_rnn.configuration_seq2seq_rnn import ATTENTION_TYPES, Seq2SeqRNNConfig
config = Seq2SeqRNNConfig(attention_type="additive", input_feeding=True)
assert config.attention_type == "additive"
try:
    Seq2SeqRNNConfig(attention_type="none", input_feeding=True)
except ValueError as error:
    assert "input_feeding" in str(error), error
else:
    raise AssertionError("input feeding without attention was accepted")
loaded = sorted(name for name in sys.modules if name.startswith("hf_seq2seq_rnn."))
print(",".join(ATTENTION_TYPES), ";", ",".join(loaded))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    types_line, loaded = result.stdout.strip().split(";")
    assert types_line.strip() == "none,dot,general,additive"
    assert "hf_seq2seq_rnn.attention_seq2seq_rnn" not in loaded
    assert "hf_seq2seq_rnn.modeling_seq2seq_rnn" not in loaded


@pytest.mark.parametrize("entry", ["modeling_seq2seq_rnn", "configuration_seq2seq_rnn"])
def test_a_remote_code_entry_file_imports_every_file_it_needs_itself(entry: str) -> None:
    """transformers 5.0 copies a local remote-code folder's files into its module cache only where the
    entry file (`auto_map`'s) imports them itself, not the files those import in turn: a file reached
    only through another fails to load there with FileNotFoundError (newer releases follow the chain)."""
    graph = import_graph("hf_seq2seq_rnn")
    start = f"hf_seq2seq_rnn.{entry}"
    reached, frontier = set(), [start]
    while frontier:
        for module in graph[frontier.pop()] - reached:
            reached.add(module)
            frontier.append(module)
    assert reached <= graph[start] | {start}, f"imported only through other files: {sorted(reached - graph[start])}"
