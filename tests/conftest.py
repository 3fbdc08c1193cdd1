import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault(
    "SSLT_CACHE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "cache")
)
# One thread per process: the models here are tiny, and several tests start subprocesses
# (which inherit OMP_NUM_THREADS) that would otherwise oversubscribe a small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# Files outside the repository (the CIFAR JPEG tarball, the paper's text) live in ../shared
# next to the checkout on the development machine; tests that need them are marked
# ``@pytest.mark.needs_shared("data/cifar10-jpg.tar.gz")`` and skipped, with the reason in the
# summary (``-rs`` in pyproject), where the file is absent.
SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_collection_modifyitems(config, items):
    for item in items:
        for mark in item.iter_markers("needs_shared"):
            missing = [rel for rel in mark.args if not (SHARED / rel).exists()]
            if missing:
                reason = f"needs_shared: ../shared/{', ../shared/'.join(missing)} not present"
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def cli_run(capsys):
    """Run ``sslt-bench ARGS`` in-process; returns (exit code, stdout + stderr).

    ``expect`` (default 0) asserts the exit code; pass ``expect=None`` to skip the check.
    """
    from sslt_bench.cli.main import main

    def run(*args: str, expect: int | None = 0) -> tuple[int, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        cap = capsys.readouterr()
        output = cap.out + cap.err
        if expect is not None:
            assert code == expect, output
        return code, output

    return run
