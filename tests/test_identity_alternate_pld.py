"""Issue 12, section 4: alternate minus its loops and KL term IS pseudo-label+decoupling.

On digits-sslt at the quick profile, ``alternate`` with one loop of 16 stage-2 epochs, no KL
term and a re-initialised classifier gives bit-identical results to ``pseudo-label+decoupling``
with the classifier re-trained on D (``classifier_pool=labeled``): the two plans share their
pieces (decoupling_init, alternate_loops, cRT options), consume the run's RNG identically
and use the same schedules, so nothing but the loops and the KL term tells them apart.
"""

import pytest

from sslt_bench.train.runner import Runner, RunSpec


def _run(out, method, overrides):
    spec = RunSpec(
        method=method,
        dataset="digits-sslt",
        profile="quick",
        seed=0,
        out=out,
        progress=False,
        device="cpu",
        overrides=overrides,
    )
    return Runner(spec).run()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("identity")
    alt = _run(
        out,
        "alternate",
        ("loops=1", "loop_epochs=16", "kl_weight=0", "classifier_reset=true"),
    )
    pld = _run(out, "pseudo-label+decoupling", ("classifier_pool=labeled",))
    return alt, pld


def test_metrics_are_bit_identical(pair):
    alt, pld = pair
    assert alt["metrics"] == pld["metrics"]  # overall, many/medium/few, per class: exact
    assert alt["metrics"]["per_class"] == pld["metrics"]["per_class"]


def test_every_stage_is_identical(pair):
    alt, pld = pair
    assert alt["init_hashes"] == pld["init_hashes"]  # weights after every training step
    assert alt["history"]["evals"] == pld["history"]["evals"]
    assert alt["history"]["pseudo_labels"] == pld["history"]["pseudo_labels"]
    losses = [[e["loss"] for e in r["history"]["epochs"]] for r in pair]
    assert losses[0] == losses[1]
    assert alt["train_images"] == pld["train_images"]
