"""The AST chapter's helpers: expert variants, ablation rows, resumable runs, paper tables, metrics."""
import json

import numpy as np
import pytest
import torch

import ddlib
from ddlib.chapters import ast_experiments as astx
from ddlib.methods.ast_components import SmoothExpertLoss, average_variation, representative_init
from ddlib.evaluation.runner import EvalConfig
from ddlib.trajectories.experts import ExpertConfig
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.train import cross_entropy_hook
from ddlib.trajectories.trajectory_store import generate_experts


@pytest.fixture(scope="module")
def digits():
    data = ddlib.load_dataset("digits")
    return ddlib.chapters.scales.subset_per_class(data, 30, 10)


@pytest.fixture(scope="module")
def settings():
    return ddlib.scale_settings("smoke", width=4, expert_epochs_total=2)


@pytest.fixture(scope="module")
def store(tmp_path_factory, digits, settings):
    config, hook = astx.expert_variant(settings, "SGD")
    return generate_experts(tmp_path_factory.mktemp("experts"), digits, config, 2, seed=0, loss_hook=hook,
                            progress=False)


@pytest.mark.parametrize("preset", ["code", "paper"])
def test_expert_variants(settings, preset):
    sgd, hook = astx.expert_variant(settings, "SGD", preset=preset)
    assert sgd == settings.expert_config("mtt") and hook is cross_entropy_hook  # shared with MTT's chapters
    scaled = dict(epochs=settings.expert_epochs_total, width=settings.width, batch_size=settings.expert_batch)
    momentum, hook = astx.expert_variant(settings, "SGD+momentum", preset=preset)
    assert momentum == ExpertConfig.ast(preset, **scaled)
    assert hook == astx.VariantLoss("SGD+momentum", preset) and hook.preset == preset and hook.smooth is None
    adam, hook = astx.expert_variant(settings, "Adam", preset=preset)
    assert adam.optimizer.kind == "adam" and adam.optimizer.lr == momentum.optimizer.lr
    assert adam.optimizer.milestones == momentum.optimizer.milestones and hook.preset == preset
    assert adam.optimizer.weight_decay == 0.0  # buffer.py's Adam has none; the paper's reading has none either
    smooth_loss = SmoothExpertLoss.code() if preset == "code" else SmoothExpertLoss.paper()
    _, hook = astx.expert_variant(settings, "momentum+GP", preset=preset)
    assert hook.smooth == smooth_loss.replace(use_clip=False) and hook.variant == "momentum+GP"
    smooth, hook = astx.expert_variant(settings, "momentum+GP+clip", zca=True, preset=preset)
    assert hook == astx.VariantLoss("momentum+GP+clip", preset, smooth_loss) and smooth.zca
    assert hook.to_dict()["preset"] == preset  # what the trajectory store's manifest records
    assert astx.VariantLoss.from_dict(hook.to_dict()) == hook


def test_expert_variant_defaults_and_errors(settings):
    assert astx.expert_variant(settings, "momentum+GP+clip") == astx.expert_variant(settings, "momentum+GP+clip",
                                                                                   preset="code")
    with pytest.raises(ValueError, match="expected one of"):
        astx.expert_variant(settings, "RMSprop")
    with pytest.raises(ValueError, match="preset='both'"):
        astx.expert_variant(settings, "Adam", preset="both")
    with pytest.raises(ValueError, match="variant='SGD'"):
        astx.VariantLoss("SGD", "code")  # MTT's expert is plain cross-entropy, not a labelled AST variant


def test_variant_loss_is_the_wrapped_loss():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = torch.randn(5, 1, 2, 2, generator=ddlib.make_generator(0))
    labels = torch.tensor([0, 1, 2, 0, 1])
    plain = astx.VariantLoss("SGD+momentum", "code")(net, images, labels, epoch=0, raw_images=images)
    assert torch.equal(plain, cross_entropy_hook(net, images, labels, epoch=0, raw_images=images))
    smooth = SmoothExpertLoss.code()
    wrapped = astx.VariantLoss("momentum+GP+clip", "code", smooth)(net, images, labels, epoch=3, raw_images=images)
    assert torch.equal(wrapped, smooth(net, images, labels, epoch=3, raw_images=images))


def test_row_names_are_the_published_ones():
    published = ddlib.paper_results().query("paper == 'AST'")
    names = {table: set(published.query("table == @table")["method"]) for table in ("Table 1", "Table 2", "Table 6",
                                                                                     "Table 7")}
    assert set(astx.TABLE1_NAMES.values()) <= names["Table 1"]
    assert set(astx.TABLE2_ROWS) == names["Table 2"]
    assert set(astx.TABLE6_NAMES.values()) - {"expert: Adam"} == names["Table 6"]
    for variant in ("code", "paper"):
        assert {name for name, _ in astx.ABLATION_STEPS[variant]} == names["Table 7"]


@pytest.mark.parametrize("variant", ["code", "paper"])
@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_cumulative_ablation_ends_at_full_ast(ipc, variant):
    rows = astx.cumulative_ablation(ipc, variant)
    assert list(rows) == [name for name, _ in astx.ABLATION_STEPS[variant]]
    # the code's student always has momentum 0.9 (no switch turns it off); the paper's is plain SGD
    assert rows["base (smooth experts)"] == ({"inner_momentum": 0.9} if variant == "code" else {})
    assert rows["+ weight perturbation"] == astx.ast_changes(ipc, variant)
    full = MTTConfig(ipc=ipc).replace(**astx.ast_changes(ipc, variant))
    assert full.replace(representative_clusters=None) == MTTConfig(ipc=ipc).with_ast(variant)
    assert full.representative_clusters == (10 if ipc == 50 else None)  # Sec. 4.1: 10 clusters x 5 at IPC 50
    # each row turns on exactly one more component than the previous
    switches = ("init", "balanced_inner_loss", "intermediate_matching", "perturbation")
    assert [sum(k in r for k in switches) for r in rows.values()] == [0, 1, 2, 3, 4]
    assert astx.ast_changes(ipc) == astx.ast_changes(ipc, "code")  # the code is the default
    with pytest.raises(ValueError, match="variant='both'"):
        astx.cumulative_ablation(ipc, "both")


def test_first_experts_and_summaries(store):
    one = astx.first_experts(store, 1)
    assert len(one) == 1 and one.root == store.root and len(store) == 2
    with pytest.raises(ValueError, match="holds 2 experts"):
        astx.first_experts(store, 3)
    summary = astx.expert_summary(store)
    expected = np.mean([average_variation(t.snapshots) for t in store])
    assert summary["avg_var"] == pytest.approx(expected)
    assert summary["expert_acc"] == pytest.approx(100 * np.mean([e["test_accuracy"][-1] for e in store.experts]))
    curves = astx.trajectory_curves(store)
    assert list(curves["epoch"]) == [1, 2] and curves["step_size"].shape == (2,)
    assert np.mean(curves["step_size"]) == pytest.approx(expected)


def test_distill_resumes_and_caches_the_final_evaluation(tmp_path, digits, store):
    config = MTTConfig(ipc=1, iterations=2, syn_steps=2, expert_epochs=1, max_start_epoch=1, lr_img=10.0,
                       lr_teacher=0.01)
    eval_config = EvalConfig(epochs=2, num_eval=1, width=4)
    first = astx.distill(digits, store, config, 0, eval_config=eval_config, folder=tmp_path, name="mtt")
    cached = list(tmp_path.glob("mtt-*.eval.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["iteration"] == 2
    again = astx.distill(digits, store, config, 0, eval_config=eval_config, folder=tmp_path, name="mtt")
    assert again.result.iterations_done == 2 and again.final == first.final
    assert torch.equal(again.result.synthetic.images_syn, first.result.synthetic.images_syn)
    periodic = astx.distill(digits, store, config, 0, eval_config=eval_config, folder=tmp_path, name="mtt",
                            eval_every=1)
    assert [e["iteration"] for e in periodic.result.evaluations] == [0, 1, 2]
    assert periodic.final is periodic.result.evaluations[-1]
    assert periodic.record_config()["mtt"] == config.to_dict()


def test_periodic_evaluations_follow_network_zero_of_the_final_one(tmp_path, digits, store):
    config = MTTConfig(ipc=1, iterations=2, syn_steps=2, expert_epochs=1, max_start_epoch=1, lr_img=10.0,
                       lr_teacher=0.01)
    eval_config = EvalConfig.preset("ast", epochs=4, num_eval=2, width=4)
    periodic = eval_config.replace(num_eval=1)
    outcome = astx.distill(digits, store, config, 3, eval_config=eval_config, folder=tmp_path, name="fig7",
                           eval_every=1, periodic_eval_config=periodic)
    evaluations = outcome.result.evaluations
    assert [(e["iteration"], len(e["last"])) for e in evaluations] == [(0, 1), (1, 1), (2, 2)]
    assert outcome.final is evaluations[-1] and len(outcome.final["best"]) == 2  # the full protocol at the end
    alone = ddlib.evaluate_synthetic(outcome.result.synthetic, digits, periodic, 3, progress=False)
    assert alone.best[0] == outcome.final["best"][0]  # network 0 is the same network in either evaluation
    its, best = astx.best_so_far(evaluations, "best", network=0)
    assert its == [0, 1, 2] and best == list(np.maximum.accumulate([100 * e["best"][0] for e in evaluations]))
    plain = astx.distill(digits, store, config, 3, eval_config=eval_config, folder=tmp_path, name="fig7",
                         eval_every=1)
    assert [len(e["last"]) for e in plain.result.evaluations] == [2, 2, 2]  # another key, another run


def test_per_expert_metrics_agree_with_the_summaries(digits, store):
    images = digits.images_train[:8]
    metrics = astx.per_expert_metrics(store, digits, images)
    assert {k: v.shape for k, v in metrics.items()} == {k: (2,) for k in (
        "avg_var", "expert_acc", "input_grad_norm_sample", "input_grad_norm_pixel")}
    summary, norms = astx.expert_summary(store), astx.expert_input_gradient_norms(store, digits, images)
    assert metrics["avg_var"].mean() == pytest.approx(summary["avg_var"])
    assert metrics["expert_acc"].mean() == pytest.approx(summary["expert_acc"])
    assert metrics["input_grad_norm_sample"].mean() == pytest.approx(norms["sample"])
    assert metrics["input_grad_norm_pixel"].std() == pytest.approx(norms["pixel_std"])


def test_forgetting_sets_pick_training_images(digits):
    sets = astx.forgetting_sets(digits, [1, 3], epochs=1, seed=0, width=4)
    for ipc, syn in sets.items():
        assert syn.class_counts().tolist() == [ipc] * digits.num_classes
        index = torch.tensor(syn.provenance["indices"])
        assert torch.equal(syn.images_syn, digits.images_train[index])
        assert torch.equal(digits.labels_train[index], syn.labels_syn)


def test_init_picks_and_coverage(digits, store):
    encoder = astx.expert_network(store, digits)
    picks = astx.init_picks(encoder, digits, 3, [0, 2], seed=5)
    assert set(picks) == {0, 2}
    for c, pick in picks.items():
        assert pick["features"].shape[0] == len(digits.class_indices[c])
        expected = representative_init(pick["features"], 3, ddlib.derive_seed(5, "representative", c))
        assert torch.equal(pick["representative"], expected)
        assert len(set(pick["random"].tolist())) == 3
    features = torch.tensor([[0.0], [1.0], [10.0]])
    assert astx.coverage_distance(features, torch.tensor([1])) == pytest.approx(10 / 3)
    assert astx.coverage_distance(features, torch.tensor([0, 1, 2])) == 0.0
    assert astx.pca_2d(torch.randn(20, 5, generator=ddlib.make_generator(0))).shape == (20, 2)


def test_series_metrics():
    evaluations = [{"iteration": 0, "last_mean": 0.5, "best_mean": 0.7, "best": [0.8, 0.6]},
                   {"iteration": 10, "last_mean": 0.4, "best_mean": 0.75, "best": [0.7, 0.8]},
                   {"iteration": 20, "last_mean": 0.6, "best_mean": 0.9, "best": [0.85, 0.95]}]
    assert astx.best_so_far(evaluations) == ([0, 10, 20], [50.0, 50.0, 60.0])
    assert astx.best_so_far(evaluations, "best")[1] == pytest.approx([70.0, 75.0, 90.0])
    assert astx.best_so_far(evaluations, "best", network=0)[1] == pytest.approx([80.0, 80.0, 85.0])
    with pytest.raises(ValueError, match="statistic='mean'"):
        astx.best_so_far(evaluations, "mean")
    assert astx.first_reaching([0, 10, 20], [50.0, 50.0, 60.0], 55.0) == 20
    assert astx.first_reaching([0, 10], [50.0, 50.0], 55.0) is None
    assert astx.coefficient_of_variation([1.0, 3.0]) == pytest.approx(0.5)
    assert astx.relative_jitter([2.0, 2.0, 2.0]) == 0.0
    assert astx.relative_jitter([1.0, 2.0, 1.0]) == pytest.approx(1.0 / (4 / 3))
    assert astx.relative_jitter([1.0, float("nan")]) == float("inf")


def test_record_series_and_beside_paper(tmp_path):
    recorder = ddlib.Recorder(tmp_path, "AST", "smoke", "mnist5k", "cpu")
    assert astx.record_series(recorder, "Figure 7", "AST", "best_test_acc", [0, 5], [10.0, 20.0],
                              x_name="iteration", ipc=1) == [10.0, 20.0]
    for method, arch, value in (("AST", "ResNet18", 30.0), ("AST", "ResNet18", 34.0), ("MTT", "VGG11", 20.0)):
        recorder.add("Table 4", method, "test_acc", value, ipc=1, arch=arch)
    records = ddlib.read_records(recorder.path)
    series = records.query("experiment == 'Figure 7'")
    assert [c["iteration"] for c in series["config"]] == [0, 5] and list(series["value"]) == [10.0, 20.0]
    table = astx.beside_paper(records.query("experiment == 'Table 4'"), "Table 4", ["test_acc"],
                              keys=("method", "arch"))
    assert list(table["method"]) == ["AST", "MTT"] and list(table["n"]) == [2, 1]
    assert table.loc[0, "ours: test_acc"] == "32 ± 2.8"  # records without a seed are units; sample sd
    assert table.loc[0, "paper CIFAR-10: test_acc"] == "67.3 ± 0.4"  # AST on ResNet18, not another arch
    assert table.loc[1, "paper CIFAR-10: test_acc"] == "55.4 ± 0.8"
    recorder.add("Table 1", "expert optimizer: SGD", "expert_acc", 50.0)
    recorder.add("Table 1", "expert optimizer: SGD", "test_acc", 40.0)
    table1 = astx.beside_paper(ddlib.read_records(recorder.path).query("experiment == 'Table 1'"), "Table 1",
                               ["expert_acc", "test_acc"])
    assert table1.loc[0, ["paper CIFAR-100: expert_acc", "paper CIFAR-100: test_acc"]].tolist() == ["48.6", "39.7"]


def test_settings_table_flags_changes():
    table = astx.settings_table(ddlib.scale_settings("mini"), {"ablation IPC": (1, 10), "same": (3, 3)})
    changed = dict(zip(table["setting"], table["changed"]))
    assert changed["width"] == "yes" and changed["ablation IPC"] == "yes" and changed["same"] == ""
    # None at both scales: MTT's table decides, per IPC; mini's IPC 1 value is not the paper's three
    assert changed["lr_img"] == "yes" and changed["batch_syn"] == ""  # all images at every IPC of both


def test_input_gradient_norm_of_a_linear_model():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = torch.randn(5, 1, 2, 2, generator=ddlib.make_generator(1))
    expected = float(net[1].weight.detach().sum(0).norm())  # the same for every sample
    assert astx.input_gradient_norm(net, images) == pytest.approx(expected)
    # one channel: the per-pixel norm is |column sum|, averaged over the 4 pixels
    per_pixel = float(net[1].weight.detach().sum(0).abs().mean())
    assert astx.input_gradient_norm(net, images, norm="pixel") == pytest.approx(per_pixel)


def test_input_gradient_norm_pixel_by_hand():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():  # (C=2, H=1, W=2), flat index c * 2 + w: pixel 0 = (3, 4), pixel 1 = (0, 1)
        net[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 1.0]]))
    images = torch.randn(3, 2, 1, 2, generator=ddlib.make_generator(2))
    assert astx.input_gradient_norm(net, images, norm="pixel") == pytest.approx((5.0 + 1.0) / 2)
    assert astx.input_gradient_norm(net, images, norm="sample") == pytest.approx(26 ** 0.5)


def test_expert_input_gradient_norms(digits, store):
    images = digits.images_train[:8]
    norms = astx.expert_input_gradient_norms(store, digits, images)
    per_expert = [{n: astx.input_gradient_norm(astx.expert_network(store, digits, k), images, norm=n)
                   for n in ("sample", "pixel")} for k in range(2)]
    assert norms["experts"] == 2
    for n in ("sample", "pixel"):
        values = [e[n] for e in per_expert]
        assert norms[n] == pytest.approx(np.mean(values)) and norms[f"{n}_std"] == pytest.approx(np.std(values))
    assert norms["pixel"] < norms["sample"]  # one channel: per-pixel norms are single entries of the gradient
    first = astx.expert_input_gradient_norms(store, digits, images, num_experts=1)
    assert first["sample"] == pytest.approx(per_expert[0]["sample"]) and first["sample_std"] == 0.0
    with pytest.raises(ValueError, match="num_experts=3"):
        astx.expert_input_gradient_norms(store, digits, images, num_experts=3)


def test_imagenet_subset_config():
    one = astx.imagenet_subset_config(1, iterations=7)
    # MTT's readme row for the ImageNet subsets at IPC 1 (FACTS.md)
    assert (one.syn_steps, one.expert_epochs, one.max_start_epoch, one.lr_img, one.lr_lr, one.lr_teacher) == (
        20, 2, 10, 1000.0, 1e-6, 0.01)
    assert one.batch_syn is None and not one.zca and one.iterations == 7 and one.ipc == 1
    ten = astx.imagenet_subset_config(10, iterations=7)
    assert (ten.syn_steps, ten.max_start_epoch, ten.lr_img, ten.lr_lr) == (20, 10, 1e4, 1e-4)
    with pytest.raises(ValueError, match="ipc=50"):
        astx.imagenet_subset_config(50, iterations=7)
    # the distiller's network is the experts' ConvNet with depth from the resolution: ConvNetD5 at 128x128
    net = ddlib.build_model("ConvNet", 3, 10, (128, 128), width=2)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 5
