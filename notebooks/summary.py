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
scale = "mini"
seed = 0
device = "auto"
data_root = ""
out_dir = "results/summary"
artifacts_dir = "artifacts"

# %%
from pathlib import Path

from IPython.display import HTML, Markdown, display

import ddlib
from ddlib.summary import reading_guide, reproduction_summary, summary_html

results_root = Path(out_dir).parent
summary = reproduction_summary(results_root, scale=scale)
display(Markdown(f"Build scale: **{scale}**. Results read from `{results_root.name}/`: "
                 + reading_guide(summary, scale)))

# %% [markdown]
# ## Claims, paper by paper

# %%
display(HTML(summary_html(summary)))
