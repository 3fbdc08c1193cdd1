import os

import pytest
import torch

os.environ.setdefault("SSLT_CACHE", os.path.join(os.path.dirname(__file__), "..", "build", "cache"))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def cli_run(tmp_path):
    """Run the CLI in-process through click's runner; returns (exit code, output)."""
    from click.testing import CliRunner

    from sslt_bench.cli import main

    def run(*args: str, expect: int | None = 0):
        runner = CliRunner()
        res = runner.invoke(_wrapped(main), list(args), catch_exceptions=False)
        if expect is not None:
            assert res.exit_code == expect, res.output
        return res.exit_code, res.output

    return run


def _wrapped(main):
    import click

    @click.command(
        context_settings={
            "ignore_unknown_options": True,
            "allow_extra_args": True,
            "help_option_names": [],
        }
    )
    @click.pass_context
    def cmd(ctx):
        main(list(ctx.args))

    return cmd
