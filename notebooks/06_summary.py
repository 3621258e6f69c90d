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
# # Reproduction summary
#
# One row per claim of the three papers: what the paper reports, what this build measured,
# on which data set, at which scale and on which device, the measured effect with its
# confidence interval and number of runs, and the verdict: the claim *holds*, *does not hold*,
# or is *inconclusive at this scale*. The table is generated from the result files the
# chapters wrote (the newest complete run of each chapter, never a mix of two runs); an item
# whose results are missing says "not run". Each experiment links to the cell that produced it.
#
# A verdict at `mini` or `smoke` scale is about direction only (for example "AST beats
# MTT"), measured on a small CPU run on embedded MNIST; it does not confirm or refute the
# papers' absolute CIFAR numbers.

# %% tags=["parameters"]
scale: str = "mini"  # smoke (seconds: proves the code runs) | mini (2 CPU cores) | paper (GPU)
seed: int = 0  # unused here (every chapter takes the same parameters)
device: str = "auto"  # unused here
data_root: str = ""  # unused here
out_dir: str = "results/06_summary"  # its parent holds the chapters' result folders read here
artifacts_dir: str = "artifacts"  # unused here
dry_run: bool = False  # paper scale only: every paper shape, minimal counts (a rehearsal)

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import HTML, Markdown, display

import ddlib
from ddlib.results.summary import reading_guide, reproduction_summary, summary_html

# every parameter checked before any compute
params = ddlib.chapter_params(scale, seed=seed, device=device, data_root=data_root, out_dir=out_dir,
                              artifacts_dir=artifacts_dir, dry_run=dry_run)
results_root = Path(out_dir).parent
summary = reproduction_summary(results_root, scale=scale)
display(Markdown(f"Build scale: **{scale}**. Results read from `{results_root.name}/`: "
                 + reading_guide(summary, scale)))

# %% [markdown]
# ## Claims, paper by paper
#
# Each row is one claim. *paper value* is the published number (or the published pair of
# numbers) the claim rests on; *ours* is what this build measured, with the statistic named;
# *effect* is the measured difference (or slope) in the claimed direction, *interval* its
# confidence interval and *n* the number of independent distillation seeds (or experts) it
# rests on. The experiment links to the cell that produced the row. Items a chapter shows
# without a directional claim (a storage table, a figure of images) are listed too, so that
# nothing the papers report is silently missing; "not run" marks an item this build did not
# produce.

# %% tags=["remove-input"]
display(HTML(summary_html(summary)))
