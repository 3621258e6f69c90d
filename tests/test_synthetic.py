"""Tests of ddlib.methods.synthetic: the SyntheticSet container, its atomic save and validated load."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ddlib.core.config import Config
from ddlib.methods.synthetic import MANIFEST_NAME, TENSORS_NAME, SyntheticSet


@dataclasses.dataclass(frozen=True)
class _MethodConfig(Config):
    method: str = "mtt"
    iterations: int = 10


def make_set(ipc: int = 2, num_classes: int = 3, shape=(1, 4, 4), **changes) -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    values = dict(
        images_syn=torch.randn(ipc * num_classes, *shape, generator=g),
        labels_syn=torch.arange(num_classes).repeat_interleave(ipc),
        syn_lr=0.01, config={"method": "mtt", "iterations": 10}, provenance={"seed": 3},
        dataset="digits", ipc=ipc, zca=True,
    )
    values.update(changes)
    return SyntheticSet(**values)


def test_round_trip(tmp_path):
    syn = make_set()
    folder = syn.save(tmp_path / "set")
    loaded = SyntheticSet.load(folder, expect_shape=(1, 4, 4))
    assert torch.equal(loaded.images_syn, syn.images_syn) and loaded.images_syn.dtype == torch.float32
    assert torch.equal(loaded.labels_syn, syn.labels_syn) and loaded.labels_syn.dtype == torch.int64
    assert (loaded.syn_lr, loaded.config, loaded.provenance) == (0.01, syn.config, {"seed": 3})
    assert (loaded.dataset, loaded.ipc, loaded.zca, loaded.num_classes) == ("digits", 2, True, 3)
    assert loaded.class_counts().tolist() == [2, 2, 2]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["images_shape"] == [6, 1, 4, 4] and len(manifest["sha256"]) == 64
    # the full (N, C, H, W) expectation also works
    SyntheticSet.load(folder, expect_shape=(6, 1, 4, 4))


def test_save_replaces_existing_set_and_leaves_no_temporaries(tmp_path):
    make_set().save(tmp_path / "set")
    make_set(ipc=1, syn_lr=None).save(tmp_path / "set")
    loaded = SyntheticSet.load(tmp_path / "set")
    assert loaded.ipc == 1 and loaded.syn_lr is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_construction_normalises_inputs():
    images = torch.randn(4, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    syn = make_set(ipc=2, num_classes=2, images_syn=images, labels_syn=torch.tensor([0, 1, 0, 1], dtype=torch.int32),
                   syn_lr=torch.tensor(0.02), config=_MethodConfig())
    assert syn.images_syn.dtype == torch.float32 and not syn.images_syn.requires_grad
    assert syn.labels_syn.dtype == torch.int64 and syn.syn_lr == pytest.approx(0.02)
    assert syn.config == {"method": "mtt", "iterations": 10}
    with torch.no_grad():
        images.add_(1.0)  # a later in-place update of the parameter must not leak in
    assert not torch.allclose(syn.images_syn, images.float())


@pytest.mark.parametrize("labels, match", [
    (torch.tensor([0, 0, 1, 3, 2, 2]), r"range \[0, 3\] is outside \[0, 3\)"),
    (torch.tensor([0, 0, 0, 1, 2, 2]), r"class counts differ: \{0: 3, 1: 1\}"),
    (torch.tensor([-1, 0, 1, 1, 2, 2]), "outside"),
])
def test_bad_labels_raise(labels, match):
    with pytest.raises(ValueError, match=match):
        make_set(labels_syn=labels)


def test_other_construction_errors():
    with pytest.raises(ValueError, match="not a positive multiple of ipc=4"):
        make_set(ipc=4, num_classes=1, images_syn=torch.zeros(6, 1, 4, 4), labels_syn=torch.zeros(6, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"labels_syn must have shape \(6,\)"):
        make_set(labels_syn=torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="syn_lr=-1.0"):
        make_set(syn_lr=-1.0)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        make_set(provenance={"bad": float("nan")})


def test_missing_raises_file_not_found_naming_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SyntheticSet.load(tmp_path / "nowhere")
    folder = make_set().save(tmp_path / "set")
    (folder / TENSORS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=TENSORS_NAME):
        SyntheticSet.load(folder)


def test_corrupt_manifest_raises_value_error_naming_it(tmp_path):
    folder = make_set().save(tmp_path / "set")
    (folder / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=f"corrupt SyntheticSet manifest .*{MANIFEST_NAME}"):
        SyntheticSet.load(folder)


def test_truncated_or_replaced_tensor_file_raises(tmp_path):
    folder = make_set().save(tmp_path / "set")
    data = (folder / TENSORS_NAME).read_bytes()
    (folder / TENSORS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"sha256 of .*{TENSORS_NAME}"):
        SyntheticSet.load(folder)
    # a valid tensor file of another set is caught by the hash as well
    other = make_set(syn_lr=0.5, images_syn=torch.zeros(6, 1, 4, 4)).save(tmp_path / "other")
    (folder / TENSORS_NAME).write_bytes((other / TENSORS_NAME).read_bytes())
    with pytest.raises(ValueError, match="corrupt, truncated or was replaced"):
        SyntheticSet.load(folder)


def _rewrite(folder, payload, **manifest_changes):
    """Replace the tensors and patch the manifest with a matching hash (a consistent but bad set)."""
    import hashlib

    torch.save(payload, folder / TENSORS_NAME)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["sha256"] = hashlib.sha256((folder / TENSORS_NAME).read_bytes()).hexdigest()
    manifest.update(manifest_changes)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_unreadable_tensor_file_with_matching_hash_raises(tmp_path):
    folder = make_set().save(tmp_path / "set")
    _rewrite(folder, {"something": "else"})
    with pytest.raises(ValueError, match=f"cannot read SyntheticSet tensors .*{TENSORS_NAME}"):
        SyntheticSet.load(folder)


def test_shape_mismatches_name_both(tmp_path):
    folder = make_set().save(tmp_path / "set")
    with pytest.raises(ValueError, match=r"image shape \(1, 4, 4\); expected \(3, 4, 4\)"):
        SyntheticSet.load(folder, expect_shape=(3, 4, 4))
    _rewrite(folder, {"images_syn": torch.zeros(6, 1, 5, 5), "labels_syn": torch.arange(3).repeat_interleave(2)})
    with pytest.raises(ValueError, match=r"shape \(6, 1, 5, 5\); manifest .* says \(6, 1, 4, 4\)"):
        SyntheticSet.load(folder)


def test_bad_labels_on_disk_raise(tmp_path):
    folder = make_set().save(tmp_path / "set")
    _rewrite(folder, {"images_syn": torch.zeros(6, 1, 4, 4), "labels_syn": torch.tensor([0, 0, 0, 1, 2, 2])})
    with pytest.raises(ValueError, match="invalid SyntheticSet in .*class counts differ"):
        SyntheticSet.load(folder)
    _rewrite(folder, {"images_syn": torch.zeros(6, 1, 4, 4), "labels_syn": torch.tensor([0, 0, 1, 1, 2, 7])})
    with pytest.raises(ValueError, match="outside"):
        SyntheticSet.load(folder)


# -- provenance stamped by run_distillation ---------------------------------------------------------
class _FakeStore:
    """Stand-in expert store on disk: a folder and a manifest with two experts."""

    def __init__(self, root, experts=({"seed": 1, "sha256": "aa"}, {"seed": 2, "sha256": "bb"})):
        self.root, self.manifest = root, {"arch": "ConvNet", "experts": [dict(e) for e in experts]}

    def __len__(self) -> int:
        return len(self.manifest["experts"])


class _Counting:
    """A Distiller that only counts its steps (and fails at ``fail_at``)."""

    def __init__(self, config, source=None, seed=7, fail_at=None):
        self.config, self.source, self.seed, self.fail_at, self.steps = config, source, seed, fail_at, 0

    def step(self, iteration):
        from ddlib.methods.distill_loop import NonFiniteLoss

        if iteration == self.fail_at:
            raise NonFiniteLoss("loss is nan")
        self.steps += 1
        return {"loss": 1.0}

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]

    def synthetic_set(self):
        return make_set(config=self.config or {}, provenance={"seed": self.seed})

    def fingerprint(self):
        return {"config": self.config.to_dict() if self.config else None, "seed": self.seed}


def test_run_distillation_stamps_provenance(tmp_path):
    import ddlib
    from ddlib.methods.distill_loop import run_distillation
    from ddlib.core.provenance import expert_store_id, git_sha, source_hash

    config = _MethodConfig(iterations=3)
    store = _FakeStore(tmp_path / "experts")
    method = _Counting(config, store)
    result = run_distillation(method, progress=False)  # iterations from the config
    prov = result.synthetic.provenance
    assert method.steps == 3 and (prov["iterations"], prov["iterations_planned"]) == (3, 3)
    assert prov["method_config"] == {"method": "mtt", "iterations": 3} and prov["seed"] == 7
    assert prov["expert_store"] == expert_store_id(store)
    assert prov["expert_store"]["path"] == str(tmp_path / "experts") and prov["expert_store"]["experts"] == 2
    assert (prov["ddlib_version"], prov["git_sha"]) == (ddlib.__version__, git_sha())
    assert prov["ddlib_source_sha256"] == source_hash()
    folder = result.synthetic.save(tmp_path / "set")
    assert SyntheticSet.load(folder).provenance == prov  # survives the disk
    dm_like = run_distillation(_Counting(config, source=None), progress=False).synthetic.provenance
    assert dm_like["expert_store"] is None


def test_provenance_records_the_iterations_actually_run():
    from ddlib.methods.distill_loop import run_distillation

    result = run_distillation(_Counting(_MethodConfig(iterations=5), fail_at=2), progress=False)
    assert result.iterations_done == 2
    assert (result.synthetic.provenance["iterations"], result.synthetic.provenance["iterations_planned"]) == (2, 5)


def test_iterations_have_one_source_of_truth():
    from ddlib.methods.distill_loop import run_distillation

    method = _Counting(_MethodConfig(iterations=3))
    with pytest.raises(ValueError, match="iterations=4 differs from the method config's iterations=3"):
        run_distillation(method, 4, progress=False)
    assert run_distillation(method, 3, progress=False).iterations_done == 3  # equal: fine

    class NoConfig(_Counting):
        pass

    bare = NoConfig(config=None)
    with pytest.raises(ValueError, match="iterations=None but NoConfig has no config.iterations"):
        run_distillation(bare, progress=False)
    assert run_distillation(bare, 2, progress=False).iterations_done == 2


def test_expert_store_id_follows_the_experts_used(tmp_path):
    from ddlib.core.provenance import expert_store_id

    store = _FakeStore(tmp_path)
    same = expert_store_id(_FakeStore(tmp_path))
    assert expert_store_id(store) == same and len(same["manifest_sha256"]) == 64
    retrained = _FakeStore(tmp_path, ({"seed": 1, "sha256": "aa"}, {"seed": 2, "sha256": "cc"}))
    assert expert_store_id(retrained)["manifest_sha256"] != same["manifest_sha256"]

    class FirstOne(_FakeStore):  # like ddlib.chapters.scales.FirstExperts: a view of the first expert
        experts = property(lambda self: self.manifest["experts"][:1])
        __len__ = lambda self: 1  # noqa: E731

    first = expert_store_id(FirstOne(tmp_path))
    assert first["experts"] == 1 and first["manifest_sha256"] != same["manifest_sha256"]
    extended = _FakeStore(tmp_path, ({"seed": 1, "sha256": "aa"}, {"seed": 2, "sha256": "bb"}, {"seed": 3}))
    assert expert_store_id(FirstOne(extended.root, extended.manifest["experts"]))["manifest_sha256"] == \
        first["manifest_sha256"]  # extending the store does not change the id of what was used
    assert expert_store_id(None) is None and expert_store_id(object()) is None


def test_with_provenance_adds_fields():
    syn = make_set()
    more = syn.with_provenance(iterations=4)
    assert more.provenance == {"seed": 3, "iterations": 4} and syn.provenance == {"seed": 3}
    with pytest.raises(ValueError, match="JSON-serialisable"):
        syn.with_provenance(bad=float("inf"))
