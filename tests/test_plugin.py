"""The README's "add your own method" example and third-party entry points."""

import re
import sys
import textwrap
import types
from pathlib import Path

import pytest

from sslt_bench.errors import UsageError
from sslt_bench.registry import METHODS, Registry
from sslt_bench.train.runner import Runner, RunSpec

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("## Add your own method", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_method_example_runs(tmp_path):
    module = types.ModuleType("readme_example")
    try:
        exec(compile(readme_example(), "README.md", "exec"), module.__dict__)
        assert "my-logit-adjust" in METHODS.names()
        rec = Runner(
            RunSpec(
                method="my-logit-adjust",
                out=tmp_path,
                progress=False,
                device="cpu",
                overrides=("epochs=3", "tau=1.0"),
            )
        ).run()
        assert rec["method"] == "my-logit-adjust"
        assert rec["metrics"]["overall"] > 30  # chance is 10%
        with pytest.raises(ValueError, match="already registered"):
            exec(compile(readme_example(), "README.md", "exec"), {})
    finally:
        METHODS.unregister("my-logit-adjust")


def test_entry_point_plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "myplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from sslt_bench.methods.erm import ERM
        from tests_plugin_registry import REG
        REG.register("plugged", summary="from an entry point")(type("P", (ERM,), {}))
    """)
    )
    dist = tmp_path / "myplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sslt_bench_test.methods]\nplugged = myplug\n")
    reg = Registry("method", (), "sslt_bench_test.methods")
    holder = types.ModuleType("tests_plugin_registry")
    holder.REG = reg
    monkeypatch.setitem(sys.modules, "tests_plugin_registry", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert reg.names() == ["plugged"]
    assert reg.summary("plugged") == "from an entry point"
    with pytest.raises(UsageError, match="unknown method 'nope'; choose from: plugged"):
        reg.get("nope")


def test_broken_plugin_import_propagates(tmp_path, monkeypatch):
    (tmp_path / "brokenplug.py").write_text("import does_not_exist_xyz\n")
    dist = tmp_path / "brokenplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sslt_bench_broken.methods]\nb = brokenplug\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("method", (), "sslt_bench_broken.methods")
    with pytest.raises(ModuleNotFoundError, match="does_not_exist_xyz"):
        reg.names()


def test_duplicate_name_raises():
    reg = Registry("method", (), "none.group")
    reg.register("a")(object)
    with pytest.raises(ValueError, match="'a' is already registered"):
        reg.register("a")(object)
