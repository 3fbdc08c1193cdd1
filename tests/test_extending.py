"""docs/extending.md: its worked method and data set run as written, via the public API."""

import re
import types
from pathlib import Path

import numpy as np
import pytest

import sslt_bench
from sslt_bench.registry import DATASETS, METHODS
from sslt_bench.train.runner import Runner, RunSpec

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def example(heading: str) -> str:
    section = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def docs_example():
    """Exec a doc example in a fresh module; unregister what it registered afterwards."""
    before = (set(METHODS.names()), set(DATASETS.names()))
    modules = []

    def run(heading: str) -> types.ModuleType:
        module = types.ModuleType(f"docs_{len(modules)}")
        exec(compile(example(heading), str(DOC), "exec"), module.__dict__)
        modules.append(module)
        return module

    yield run
    for name in set(METHODS.names()) - before[0]:
        METHODS.unregister(name)
    for name in set(DATASETS.names()) - before[1]:
        DATASETS.unregister(name)


def test_public_api_importable_from_the_package():
    for name in sslt_bench.__all__:
        assert getattr(sslt_bench, name) is not None, name
    from sslt_bench import BaseConfig, Method, Train, register_dataset, register_method
    from sslt_bench.methods.base import Method as BaseMethod

    assert Method is BaseMethod and issubclass(BaseConfig, object) and Train.__name__ == "Train"
    assert register_method == METHODS.register and register_dataset == DATASETS.register
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        sslt_bench.Nope  # noqa: B018
    table = DOC.read_text().split("## A new method", 1)[0]
    for name in sslt_bench.__all__[1:]:
        assert f"`{name}" in table, f"{name} is exported but not in docs/extending.md's table"


def test_docs_method_example_trains(docs_example, tmp_path):
    docs_example("A new method")
    assert "my-entmin" in METHODS.names()
    spec = RunSpec(method="my-entmin", out=tmp_path, progress=False, device="cpu")
    rec = Runner(
        RunSpec(
            **{**spec.__dict__, "overrides": ("epochs=3", "lambda_u=0.5", "min_steps_per_epoch=16")}
        )
    ).run()
    assert rec["method"] == "my-entmin" and rec["method_config"]["lambda_u"] == 0.5
    assert rec["metrics"]["overall"] > 30  # chance is 10%
    epochs = rec["history"]["epochs"]
    assert epochs and all(e["entropy"] > 0 for e in epochs)  # the U term ran on every epoch


def test_docs_dataset_example_builds_and_trains(docs_example, tmp_path):
    mod = docs_example("A new data set")
    assert "my-stripes" in DATASETS.names()
    data = mod.Stripes.build(mod.StripesParams(), 0, None)
    counts = np.bincount(data.split.labeled_y, minlength=10)
    assert counts[0] == 40 and counts[-1] == 4 and (np.diff(counts) <= 0).all()
    assert (np.bincount(data.split.unlabeled_y_hidden, minlength=10) == 2 * counts).all()
    assert data.split.hash == mod.Stripes.build(mod.StripesParams(), 0, None).split.hash
    assert data.split.hash != mod.Stripes.build(mod.StripesParams(), 1, None).split.hash
    spec = RunSpec(method="erm", dataset="my-stripes", out=tmp_path, progress=False, device="cpu")
    rec = Runner(RunSpec(**{**spec.__dict__, "overrides": ("epochs=10",)})).run()
    assert rec["dataset"] == "my-stripes" and rec["backbone"] == "small-cnn"
    assert rec["metrics"]["overall"] > 30  # chance is 10%
