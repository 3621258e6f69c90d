"""CPU and CUDA agree: MTT, AST (both variants), MCT, DM and TGDD steps, and an evaluation.

Marked ``gpu`` and skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them on a GPU machine
(``pytest -m gpu``). ``DDLIB_GPU_TEST_DEVICE=cpu`` runs the same comparisons against a second CPU
run, to rehearse the check on a machine without a GPU (they then test determinism only).
"""
import os
from types import SimpleNamespace

import pytest
import torch

import ddlib
from ddlib.methods.distill_loop import run_distillation
from ddlib.methods.dm import DistributionMatching, DMConfig
from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic
from ddlib.core.functional import ParamLayout, flatten_params
from ddlib.models import build_model
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.runtime import make_generator
from ddlib.methods.tgdd import TGDD, TGDDConfig
from ddlib.trajectories.convexified import ConvexifiedTrajectory
from ddlib.core.train import OptimizerConfig, make_optimizer, train_epoch

DEVICE = os.environ.get("DDLIB_GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 would round CUDA's convolutions and products to 10 mantissa bits: compare in full float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def digits():
    return ddlib.load_dataset("digits")


class _Trajectory:
    def __init__(self, snapshots):
        self.snapshots = snapshots

    @property
    def num_epochs(self):
        return len(self.snapshots) - 1

    def snapshot(self, epoch):
        return self.snapshots[epoch]


class _Source(list):
    def trajectory(self, k):
        return self[k]


@pytest.fixture(scope="module")
def source(digits):
    trajectories = _Source()
    for k in range(2):
        net = build_model("ConvNet", digits.channel, digits.num_classes, digits.im_size, width=8, seed=k)
        optimizer = make_optimizer(net.parameters(), OptimizerConfig(lr=0.01))
        snapshots = [flatten_params(net)]
        for epoch in range(3):
            train_epoch(net, optimizer, digits.images_train[:300], digits.labels_train[:300], batch_size=64,
                        generator=make_generator(k), epoch=epoch)
            snapshots.append(flatten_params(net))
        trajectories.append(_Trajectory(torch.stack(snapshots)))
    return trajectories


@pytest.fixture(scope="module")
def convexified(digits, source):
    """MCT's two-model trajectories of the same experts (continuous in the epoch)."""
    layout = ParamLayout.of(_net(digits))
    return _Source(ConvexifiedTrajectory.from_trajectory(SimpleNamespace(snapshots=t.snapshots, layout=layout))
                   for t in source)


def _net(digits):
    return build_model("ConvNet", digits.channel, digits.num_classes, digits.im_size, width=8, seed=0)


MTT = MTTConfig(ipc=2, iterations=2, syn_steps=4, expert_epochs=1, max_start_epoch=1, lr_img=10.0, lr_lr=1e-5,
                lr_teacher=0.01, dsa=True)


def _mtt(digits, source, device, config=MTT):
    method = TrajectoryMatching(digits.to(device), source, _net(digits), config, seed=0, device=device)
    return run_distillation(method, progress=False).synthetic


def _assert_same_images(digits, source, config):
    cpu, other = _mtt(digits, source, "cpu", config), _mtt(digits, source, DEVICE, config)
    torch.testing.assert_close(other.images_syn.cpu(), cpu.images_syn, rtol=1e-3, atol=1e-4)
    assert other.syn_lr == pytest.approx(cpu.syn_lr, rel=1e-3)


def test_mtt_steps_agree(digits, source):
    _assert_same_images(digits, source, MTT)


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_ast_steps_agree(digits, source, variant):
    # Weight perturbation, balanced inner loss and intermediate matching (2 expert epochs: one midpoint);
    # real initialisation (the representative one needs a trained expert's features).
    _assert_same_images(digits, source, MTT.with_ast(variant, init="real", expert_epochs=2))


def test_mct_steps_agree(digits, convexified):
    _assert_same_images(digits, convexified, MTT.replace(sampling="continuous"))


def test_tgdd_steps_agree(digits, source):
    def images(device):
        method = TGDD(digits.to(device), source, _net(digits), TGDDConfig(ipc=2, iterations=2, batch_real=16), 0,
                      device=device)
        return run_distillation(method, progress=False).synthetic.images_syn.cpu()

    torch.testing.assert_close(images(DEVICE), images("cpu"), rtol=1e-3, atol=1e-4)


def test_dm_steps_agree(digits):
    def images(device):
        method = DistributionMatching(digits.to(device), DMConfig(ipc=2, iterations=2, width=8), 0, device=device)
        return run_distillation(method, progress=False).synthetic.images_syn.cpu()

    torch.testing.assert_close(images(DEVICE), images("cpu"), rtol=1e-3, atol=1e-4)


def test_evaluations_agree(digits):
    syn = ddlib.random_coreset(digits, 5, seed=0)
    config = EvalConfig(epochs=20, num_eval=2, width=8)
    cpu = evaluate_synthetic(syn, digits, config, 0, device="cpu", progress=False)
    other = evaluate_synthetic(syn.to(DEVICE), digits.to(DEVICE), config, 0,
                               device=DEVICE, progress=False)
    # Same networks, data order and augmentation; only the kernels' rounding differs.
    assert abs(sum(other.last) - sum(cpu.last)) / len(cpu.last) < 0.03
