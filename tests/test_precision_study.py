"""The bf16 study of the Performance chapter: its verdict reading, speed ratio, records and checkpointed DM times."""
import json
import math

import pytest

import ddlib
from ddlib.chapters import precision_study as study_module
from ddlib.chapters.precision_study import PrecisionComparison, PrecisionStudy, outcome_text, precision_study
from ddlib.results.records import read_records
from ddlib.results.verdicts import paired_verdict


def _comparison(fp32, bf16, fp32_s=(1.0, 1.0, 1.0), bf16_s=(0.5, 0.5, 0.5)):
    verdict = paired_verdict("bf16 raises accuracy", bf16, fp32, names=("bf16", "fp32"), unit="points")
    return PrecisionComparison("bf16: evaluation", (0, 1, 2), tuple(fp32), tuple(bf16), tuple(fp32_s),
                               tuple(bf16_s), "s per evaluation", verdict)


def test_two_sided_reading_of_the_verdict():
    assert outcome_text(_comparison([50, 60, 70], [52, 62.5, 71.5]).verdict) == "bf16 raises accuracy"
    assert outcome_text(_comparison([50, 60, 70], [48, 57.5, 68.5]).verdict) == "bf16 lowers accuracy"
    assert outcome_text(_comparison([50, 60, 70], [51, 59, 70]).verdict) == "no change detected"


def test_speed_ratio_is_the_median_of_per_seed_ratios_skipping_untimed_seeds():
    c = _comparison([50, 60, 70], [51, 59, 70], fp32_s=(2.0, 4.0, math.nan), bf16_s=(1.0, 3.0, 1.0))
    assert c.speed_ratio == pytest.approx((0.5 + 0.75) / 2)
    assert math.isnan(_comparison([1, 2, 3], [1, 2, 3], fp32_s=(math.nan,) * 3).speed_ratio)


def test_detectable_change_is_the_half_width_of_the_interval():
    # effects +1, -1, 0: mean 0, sd 1, 90 % t-interval half-width t_{0.95,2} / sqrt(3) = 2.919986 / 1.732051
    c = _comparison([50, 60, 70], [51, 59, 70])
    assert c.detectable == pytest.approx(2.919986 / math.sqrt(3), rel=1e-5)
    assert c.row()["90 % CI"] == f"[{-c.detectable:.2f}, {c.detectable:.2f}]"


def test_conclusion_keeps_float32_unless_unchanged_and_faster_everywhere():
    same_faster = PrecisionStudy((_comparison([50, 60, 70], [51, 59, 70]),), wall_s=1.0)
    assert same_faster.unchanged_and_faster and "could run in bf16; they still run in float32" in \
        same_faster.conclusion()
    slower = PrecisionStudy((_comparison([50, 60, 70], [51, 59, 70], bf16_s=(2.0, 2.0, 2.0)),), wall_s=1.0)
    lower = PrecisionStudy((_comparison([50, 60, 70], [48, 57.5, 68.5]),), wall_s=1.0)
    for study in (slower, lower):
        assert not study.unchanged_and_faster and study.conclusion().startswith("The book's chapters run in float32")
    assert slower.conclusion().endswith("at this scale bf16 was not measured faster in evaluation.")
    assert lower.conclusion().endswith("at this scale bf16 changed the accuracy of evaluation.")


def test_tiny_study_records_every_number_with_its_precision_and_reuses_checkpointed_dm_times(tmp_path):
    settings = ddlib.scale_settings("smoke", expert_epochs_total=1, eval_epochs=1, dm_iterations=1, seeds=(0, 1))
    data = ddlib.load_scaled_dataset(settings, None, "cpu")
    recorder = ddlib.Recorder(tmp_path / "out", "Performance", "smoke", data.name, "cpu", params={"seed": 0})
    fast = {"batch_real": 8}  # DM's 256 real images per class would make this the slowest part
    study = precision_study(settings, data, recorder, seed=0, device="cpu", artifacts_dir=tmp_path / "art",
                            dm_options=fast)
    table = study.table()
    assert list(table.index) == ["expert training", "evaluation", "DM embedding"]
    assert (table["n"] == 2).all() and set(table["verdict"]) <= {"no change detected", "bf16 raises accuracy",
                                                                  "bf16 lowers accuracy"}
    for c in study.comparisons:
        assert c.seeds == (0, 1) and all(0 <= a <= 100 for a in c.fp32 + c.bf16)
        assert all(t > 0 for t in c.fp32_s + c.bf16_s), c.experiment
    evaluation, embedding = study.comparisons[1], study.comparisons[2]
    assert embedding.fp32 == evaluation.fp32  # (c)'s baseline is (b)'s fp32 set in the fp32 evaluation
    records = read_records(recorder.path)
    precisions = {(r.experiment, r.config.get("precision")) for r in records.itertuples() if r.metric == "test_acc"}
    expected = {(name, p) for name in study_module.EXPERIMENTS for p in ("fp32", "bf16")}
    assert precisions == expected - {("bf16: DM embedding", "fp32")}  # that baseline is the evaluation's record
    assert (records["metric"] == "precision_verdict").sum() == 3
    assert all(p.name.startswith("dm-bf16-mnist5k-ipc1-seed") for p in (tmp_path / "art" / "precision_study").glob(
        "dm-bf16-*.pt"))
    costs = sorted((tmp_path / "art" / "precision_study").glob("dm-bf16-*.cost.json"))
    assert len(costs) == 2 and [json.loads(p.read_text())["wall_time_s"] for p in costs] == list(embedding.bf16_s)

    syn, seconds = study_module._distill_dm(data, settings, 1, 0, "bf16", tmp_path / "art", "cpu", fast)
    assert seconds == embedding.bf16_s[0]  # a set read back from its checkpoint keeps its measured time
    assert syn.images_syn.shape == (10, 1, 28, 28)


def test_caption_names_scale_data_seeds_and_ends_with_the_conclusion():
    study = PrecisionStudy((_comparison([50, 60, 70], [51, 59, 70]),), wall_s=12.4)
    text = study.caption("mini", "mnist5k")
    assert text.startswith("*Table: bf16 against float32 at scale mini (mnist5k, seeds [0, 1, 2]; the study took 12 s).")
    assert text.endswith(study.conclusion())
