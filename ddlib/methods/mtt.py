"""MTT (matching training trajectories) with AST's components as independent switches.

One outer iteration: draw an expert ``k`` and a start epoch ``t``; start the student at
the expert's epoch-``t`` parameters (optionally perturbed, AST Eq. 5); unroll
``syn_steps`` SGD steps on mini-batches of the synthetic set (optionally with AST's
balanced inner loss, Eq. 2); match the expert's epoch ``t + expert_epochs`` with the
normalised distance (plus AST's intermediate matching terms, Eq. 4); update the images
and the learnable ``syn_lr`` with SGD momentum 0.5. MCT reuses this distiller unchanged
with a convexified trajectory and ``sampling="continuous"``.

The gradient through the unroll is computed by exact recomputation by default
(``MTTConfig.memory="recompute"``: one inner step's graph in memory at a time, memory flat
in ``syn_steps``); ``memory="graph"`` keeps every step's graph as the MTT code does.
The settings and MTT's published table are in :mod:`ddlib.methods.mtt_config`.
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Any, Protocol

import torch
from torch import nn

from ddlib.methods import ast_components as ast
from ddlib.core.data_parallel import DataParallel, resolve_data_parallel
from ddlib.data.augment import DSA
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.methods.data_parallel import check_per_sample, sum_image_grad
from ddlib.methods.distill_loop import GUARD_FACTOR, NonFiniteLoss, check_update, guard_bound
from ddlib.core.functional import ParamLayout, load_flat_params
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.methods.mtt_config import MTTConfig
from ddlib.methods.synthetic import SyntheticSet
from ddlib.core.unroll import matching_loss, unroll_student
from ddlib.core.unroll_memory import available_memory_bytes, choose_memory, graph_bytes_per_step
from ddlib.core.unroll_recompute import matching_gradients

__all__ = ["TrajectoryMatching", "expert_params"]

logger = logging.getLogger(__name__)


class Trajectory(Protocol):
    """What the distiller needs of one expert trajectory."""

    num_epochs: int

    def snapshot(self, epoch: int) -> torch.Tensor: ...


def expert_params(trajectory: Any, epoch: float) -> torch.Tensor:
    """Parameters ``(P,)`` of ``trajectory`` at ``epoch``: ``at(epoch)`` when the trajectory is
    continuous (MCT), else the stored integer snapshot."""
    if hasattr(trajectory, "at"):
        return trajectory.at(epoch)
    if float(epoch) != int(epoch):
        raise ValueError(f"epoch={epoch}: this trajectory stores integer epochs only (use sampling='integer')")
    return trajectory.snapshot(int(epoch))


class TrajectoryMatching:
    """The MTT/AST/MCT distiller (implements the ``Distiller`` protocol of ``distill_loop``).

    Parameters
    ----------
    data : ImageDataset
        The real data set (normalised).
    source : sequence-like of trajectories
        ``len(source)`` experts, ``source.trajectory(k)`` loads one (lazily).
    net : nn.Module
        The student architecture (the experts' architecture); used functionally.
    config : MTTConfig
    seed : int
    zca : ZCA, optional
        The fitted ZCA when ``config.zca`` (images then live in whitened space).
    device : str or torch.device
    data_parallel : bool or DataParallel
        ``True``: divide every inner batch among the processes of the initialised default
        process group (:mod:`ddlib.methods.data_parallel`; same images and ``syn_lr`` as one
        process up to rounding); ``False`` (default), or no group of more than one process: one process.
    """

    def __init__(self, data: ImageDataset, source: Any, net: nn.Module, config: MTTConfig, seed: int, *,
                 zca: ZCA | None = None, device: str | torch.device = "cpu",
                 data_parallel: bool | DataParallel = False) -> None:
        self.config, self.seed, self.device = config, seed, resolve_device(device)
        self.shard = resolve_data_parallel(data_parallel)
        check_per_sample(net, self.shard, "TrajectoryMatching")
        self.data, self.source, self.zca = data, source, zca
        expert_zca = getattr(getattr(source, "config", None), "zca", None)  # a TrajectoryStore's ExpertConfig
        if expert_zca is not None and bool(expert_zca) != config.zca:
            raise ValueError(
                f"the experts were trained with zca={bool(expert_zca)} (trajectory store config.zca) but "
                f"MTTConfig.zca={config.zca}: the student would see images in another space than its experts. "
                f"Pass MTTConfig(zca={bool(expert_zca)}) or experts trained with ExpertConfig(zca={config.zca})"
            )
        if config.zca and zca is None:
            raise ValueError("config.zca=True needs the fitted ZCA (ddlib.ZCA.fit(data.images_train))")
        if len(source) < 1:
            raise ValueError("the trajectory source holds no experts")
        self.net = net.to(self.device)
        self.layout = ParamLayout.of(self.net)
        self._current: tuple[int, Any] | None = None
        first = self._trajectory(0)
        if config.max_start_epoch + config.expert_epochs > first.num_epochs:
            raise ValueError(
                f"max_start_epoch={config.max_start_epoch} + expert_epochs={config.expert_epochs} exceeds the "
                f"experts' {first.num_epochs} epochs"
            )
        if config.sampling == "continuous" and not hasattr(first, "at"):
            raise ValueError("sampling='continuous' needs trajectories with at(epoch) (e.g. a convexified "
                             "trajectory); these store integer epochs only (use sampling='integer')")
        expert_numel = int(expert_params(first, 0).numel())
        if self.layout.numel != expert_numel:  # say which network to pass, not only that shapes differ
            raise ValueError(f"the student network has {self.layout.numel} parameters but the experts have "
                             f"{expert_numel}: the student must be the experts' network (same arch, width, depth, "
                             "norm): pass ddlib.build_expert_model(data, store.config)")
        self.layout.check(expert_params(first, 0))
        self.generator = make_generator(derive_seed(seed, "distill"))
        self.augment = DSA() if config.dsa else None
        images, labels = self._initial_images()
        self.images = images.to(self.device).requires_grad_(True)
        self.labels = labels.to(self.device)
        if self.shard is not None:  # every inner batch (the last of a pass may be short) must split over the ranks
            size = min(config.batch_syn or len(labels), len(labels))
            self.shard.part(len(labels) % size or size)
        self.syn_lr = torch.tensor(config.lr_teacher, device=self.device).requires_grad_(True)
        self.opt_img = torch.optim.SGD([self.images], lr=config.lr_img, momentum=0.5)
        self.opt_lr = torch.optim.SGD([self.syn_lr], lr=config.lr_lr, momentum=0.5)
        # The update guard (distill_loop.check_update): images within GUARD_FACTOR x the real data's range,
        # syn_lr within GUARD_FACTOR x its initial value, floored at MTT's usual 0.01 (a tiny start may grow).
        self.image_bound, self.lr_bound = guard_bound(data), GUARD_FACTOR * max(config.lr_teacher, 0.01)
        #: The memory mode the unroll uses: ``config.memory``, or what ``"auto"`` chose for this device.
        self.memory = self._resolve_memory(expert_params(first, 0).to(self.device))

    def _resolve_memory(self, start: torch.Tensor) -> str:
        """``config.memory``; for ``"auto"``, the graph when ``syn_steps`` steps of it fit in the device's free
        memory (:mod:`ddlib.core.unroll_memory`), else recomputation. Data-parallel ranks always recompute:
        every rank must take the same path, and recomputation fits wherever one step does."""
        cfg = self.config
        if cfg.memory != "auto":
            return cfg.memory
        if self.shard is not None:
            return "recompute"
        per_step = graph_bytes_per_step(self.net, start, self.images, self.labels, self.syn_lr,
                                        batch_syn=cfg.batch_syn, seed=derive_seed(self.seed, "memory-probe"),
                                        augment=self.augment, momentum=cfg.inner_momentum, gradient=cfg.gradient)
        available = available_memory_bytes(self.device)
        mode = choose_memory(per_step, cfg.syn_steps, available)
        logger.info("memory='auto': %d steps x %.0f MB of graph against %s MB free on %s -> %s", cfg.syn_steps,
                    per_step / 2**20, "unknown" if available is None else f"{available / 2**20:.0f}", self.device,
                    mode)
        return mode

    # -- initialisation --------------------------------------------------------------------
    def _real_images(self) -> torch.Tensor:
        images = self.data.images_train
        return self.zca.transform(images) if self.zca is not None else images

    def _initial_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, data = self.config, self.data
        labels = torch.arange(data.num_classes).repeat_interleave(cfg.ipc)
        if cfg.init == "noise":
            shape = (len(labels), data.channel, *data.im_size)
            return torch.randn(shape, generator=self.generator), labels
        real = self._real_images()
        picks = []
        for c in range(data.num_classes):
            index = data.class_indices[c]
            if cfg.init == "representative":
                chosen = self._representative(real[index], c)
            else:
                if cfg.ipc > len(index):
                    raise ValueError(f"ipc={cfg.ipc} exceeds the {len(index)} images of class {c}")
                chosen = torch.randperm(len(index), generator=self.generator)[: cfg.ipc]
            picks.append(index[chosen])
        return real[torch.cat(picks)].detach().clone(), labels

    def _representative(self, class_images: torch.Tensor, c: int) -> torch.Tensor:
        """AST's representative initialisation with the last expert's final snapshot as encoder."""
        trained = self._trajectory(0)
        encoder = self.net
        load_flat_params(encoder, expert_params(trained, trained.num_epochs).to(self.device))
        features = ast.class_features(encoder, class_images.to(self.device),
                                      use_logits=self.config.representative_features == "logits").cpu()
        return ast.representative_init(features, self.config.ipc, derive_seed(self.seed, "representative", c),
                                       clusters=self.config.representative_clusters)

    # -- one outer iteration -------------------------------------------------------------------
    def _trajectory(self, k: int) -> Any:
        if self._current is None or self._current[0] != k:
            self._current = (k, self.source.trajectory(k))
        return self._current[1]

    def _sample_start(self) -> tuple[int, float]:
        cfg, g = self.config, self.generator
        k = int(torch.randint(len(self.source), (1,), generator=g))
        if cfg.sampling == "continuous":
            start = float(torch.rand((), generator=g, dtype=torch.float64)) * cfg.max_start_epoch
        else:
            start = int(torch.randint(cfg.max_start_epoch, (1,), generator=g))
        return k, start

    def step(self, iteration: int) -> dict[str, Any]:
        cfg = self.config
        k, start = self._sample_start()
        trajectory = self._trajectory(k)
        last = trajectory.num_epochs
        target_epoch = min(start + cfg.expert_epochs, last)
        theta_start = expert_params(trajectory, start).to(self.device)
        theta_target = expert_params(trajectory, target_epoch).to(self.device)
        if cfg.perturbation != "none":
            # Algorithm 1 and the code: the perturbed start replaces theta_t everywhere after this,
            # as the student's start AND in every matching denominator ||theta*_t - theta_{t+i}||^2.
            theta_start = ast.perturb_weights(theta_start, self.layout, cfg.perturbation_alpha,
                                              variant=cfg.perturbation, generator=self.generator)
        weight = 1.0
        if cfg.balanced_inner_loss:
            weight = ast.balanced_loss_weight(start, cfg.max_start_epoch, cfg.balance_theta, cfg.balance_log_base)
        points = ast.intermediate_points(cfg.syn_steps, cfg.expert_epochs) if cfg.intermediate_matching else []

        def outer(final: torch.Tensor, kept: dict[int, torch.Tensor]) -> torch.Tensor:
            loss = matching_loss(final, theta_start, theta_target)
            if points:
                betas = ast.intermediate_weights(cfg.expert_epochs, cfg.intermediate_beta)
                for i, (point, beta) in enumerate(zip(points, betas), 1):
                    middle = expert_params(trajectory, min(start + i, last)).to(self.device)
                    loss = loss + beta * matching_loss(kept[point], theta_start, middle)
            return loss

        unroll_args = dict(syn_steps=cfg.syn_steps, generator=self.generator, batch_syn=cfg.batch_syn,
                           augment=self.augment, loss_weight=weight, momentum=cfg.inner_momentum,
                           keep_steps=points, gradient=cfg.gradient, shard=self.shard)
        if self.memory == "recompute":
            grads = matching_gradients(self.net, theta_start, self.images, self.labels, self.syn_lr,
                                       outer=outer, **unroll_args)
            loss_value, inner_losses = grads.loss, grads.inner_losses
            if not math.isfinite(loss_value):
                raise NonFiniteLoss(f"matching loss is {loss_value} (expert {k}, start epoch {start})")
            self.opt_img.zero_grad(set_to_none=True)
            self.opt_lr.zero_grad(set_to_none=True)
            self.images.grad, self.syn_lr.grad = grads.images, grads.syn_lr
        else:
            result = unroll_student(self.net, theta_start, self.images, self.labels, self.syn_lr, **unroll_args)
            loss = outer(result.final, result.kept)
            loss_value, inner_losses = float(loss.detach()), result.inner_losses
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"matching loss is {loss_value} (expert {k}, start epoch {start})")
            self.opt_img.zero_grad(set_to_none=True)
            self.opt_lr.zero_grad(set_to_none=True)
            loss.backward()
        sum_image_grad(self.shard, self.images)  # data parallel: each rank holds its parts of the batches
        grads_finite = torch.isfinite(self.images.grad).all() and torch.isfinite(self.syn_lr.grad)
        if not grads_finite:
            raise NonFiniteLoss(f"gradient of the matching loss is not finite (expert {k}, start epoch {start})")
        self.opt_img.step()
        self.opt_lr.step()
        clamped = bool(self.syn_lr.detach() < cfg.min_syn_lr)
        if clamped:
            with torch.no_grad():
                self.syn_lr.clamp_(min=cfg.min_syn_lr)
        check_update(f"MTT images (iteration {iteration})", self.images, self.image_bound)
        check_update(f"MTT syn_lr (iteration {iteration})", self.syn_lr, self.lr_bound)
        return {"loss": loss_value, "syn_lr": float(self.syn_lr.detach()), "syn_lr_clamped": clamped, "expert": k,
                "start_epoch": float(start), "inner_loss": float(sum(inner_losses) / len(inner_losses)),
                "inner_weight": weight}

    # -- Distiller protocol ----------------------------------------------------------------------
    def synthetic_set(self) -> SyntheticSet:
        as_ast = any(self.config.with_ast(v).to_dict() == self.config.to_dict() for v in ("code", "paper"))
        method = "AST" if as_ast else "MTT"
        return SyntheticSet(images_syn=self.images.detach().cpu().clone(), labels_syn=self.labels.cpu().clone(),
                            syn_lr=float(self.syn_lr.detach()), config={"method": method, **self.config.to_dict()},
                            provenance={"seed": self.seed}, dataset=self.data.name, ipc=self.config.ipc,
                            zca=self.zca is not None)

    def state_dict(self) -> dict[str, Any]:
        # Deep copies: optimizer state dicts alias the live momentum buffers, and a state
        # loaded into another distiller must not share them (its steps would move ours).
        return {"images": self.images.detach().cpu().clone(), "syn_lr": self.syn_lr.detach().cpu().clone(),
                "opt_img": copy.deepcopy(self.opt_img.state_dict()), "opt_lr": copy.deepcopy(self.opt_lr.state_dict()),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
            self.syn_lr.copy_(state["syn_lr"].to(self.device))
        self.opt_img.load_state_dict(state["opt_img"])
        self.opt_lr.load_state_dict(state["opt_lr"])
        self.generator.set_state(state["generator"])

    def fingerprint(self) -> dict[str, Any]:
        return {"method": "trajectory_matching", "config": self.config.to_dict(), "seed": self.seed,
                "dataset": self.data.name, "num_params": self.layout.numel, "experts": len(self.source)}
