"""init_hash: the weights before the first step, and after each training step, in every record."""

import torch

from sslt_bench.results.compare import init_status
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.session import weights_hash


def test_weights_hash_sees_one_bit_and_ignores_layout():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    h = weights_hash(net)
    assert h == weights_hash(net) and len(h) == 16
    assert weights_hash(net.to(memory_format=torch.channels_last)) == h
    with torch.no_grad():
        w = net[0].weight
        w[0, 0, 0, 1] = torch.nextafter(w[0, 0, 0, 1], torch.tensor(9.0))  # one ulp
    assert weights_hash(net) != h
    net2 = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net2.load_state_dict(net.state_dict())
    assert weights_hash(net2) == weights_hash(net)
    net2[1].running_mean += 1  # buffers count too
    assert weights_hash(net2) != weights_hash(net)


def _run(tmp_path, method, seed=0, *extra):
    lengths = {
        "alternate": ("loops=1", "loop_epochs=1"),
        "decoupling": (),
    }[method]
    spec = RunSpec(
        method=method,
        dataset="digits-sslt",
        seed=seed,
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=("epochs=1", "head_epochs=1", *lengths, *extra),
    )
    return Runner(spec).run()


def test_records_carry_init_hashes_and_a_shared_init_is_checked(tmp_path):
    dec = _run(tmp_path, "decoupling")
    alt = _run(tmp_path, "alternate")
    assert dec["init_hash"] == alt["init_hash"] == dec["init_hashes"]["init"]
    assert dec["channels_last"] is True  # CPU default memory format, recorded (it moves floats)
    assert set(dec["init_hashes"]) == {"init", "after:embed", "after:classifier"}
    # the Decoupling initialisation is one plan: same plan digests, bit-identical weights
    for key in ("after:embed", "after:classifier"):
        assert alt["init_plans"][key] == dec["init_plans"][key]
        assert alt["init_hashes"][key] == dec["init_hashes"][key]
    assert alt["init_plans"]["after:loop1/embed"] != dec["init_plans"]["after:classifier"]
    assert init_status(alt, dec) == ("same to classifier", False)
    assert "weights" not in dec["history"]
    other_seed = _run(tmp_path, "decoupling", 1)
    assert other_seed["init_hash"] != dec["init_hash"]
    assert init_status(alt, other_seed)[1]  # different initial weights: excluded
    longer = _run(tmp_path, "decoupling", 0, "head_epochs=2")  # another init recipe
    assert longer["init_plans"]["after:classifier"] != dec["init_plans"]["after:classifier"]
    assert init_status(alt, longer) == ("same to embed", False)


def test_memory_format_default_by_device_and_backbone():
    from sslt_bench.models.wrapper import use_channels_last

    assert use_channels_last("cpu", "resnet20") and use_channels_last("cpu", "resnet32")
    assert use_channels_last("cpu", "small-cnn") and not use_channels_last("cpu", "resnet50")
    assert use_channels_last("cuda", "small-cnn")
