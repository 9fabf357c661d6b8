"""Repository hygiene that the test runner relies on."""
from collections import Counter


def test_test_module_names_are_unique(repo_root):
    # tests/ has no __init__.py files (pytest's default 'prepend' import mode), so two test modules
    # with one basename collide at collection time: keep them unique.
    names = Counter(p.name for p in (repo_root / "tests").rglob("*.py") if p.name != "conftest.py")
    assert not [n for n, c in names.items() if c > 1]


def test_no_sys_path_edits_in_library(repo_root):
    for pkg in ("specvqgan", "vocoder", "evaluation", "feature_extraction"):
        for path in (repo_root / pkg).rglob("*.py"):
            assert "sys.path" not in path.read_text(), f"{path} edits sys.path"
