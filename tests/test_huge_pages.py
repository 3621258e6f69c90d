"""PyTorch's huge-page switch (THP_MEM_ALLOC_ENABLE) that make, the book pipeline and the benchmarks turn on."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import run as bench_run  # noqa: E402

VAR = "THP_MEM_ALLOC_ENABLE"
PAGE_FAULTS = """
import resource, torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16 * 2**20)  # 64 MB, every page written
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _env_without_switch():
    return {k: v for k, v in os.environ.items() if k != VAR}


def _thp_mode():
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else None


@pytest.mark.skipif(_thp_mode() in (None, "never"), reason="transparent huge pages unavailable on this kernel")
def test_switch_cuts_the_page_faults_of_a_fresh_large_tensor():
    faults = {}
    for value in (None, "1"):
        env = _env_without_switch() | ({VAR: value} if value else {})
        out = subprocess.run([sys.executable, "-c", PAGE_FAULTS], env=env, capture_output=True, text=True, check=True)
        faults[value] = int(out.stdout.split()[-1])
    pages = 64 * 2**20 // 4096
    assert faults[None] > pages // 2, faults  # small pages: one fault per 4 kB page
    assert faults["1"] < pages // 10, faults  # huge pages: one fault per 2 MB (plus a few small ones)


def test_make_exports_the_switch_unless_the_caller_set_it():
    probe = "probe:\n\t@echo $$THP_MEM_ALLOC_ENABLE\n"
    for env, expected in ((_env_without_switch(), "1"), (_env_without_switch() | {VAR: "0"}, "0")):
        out = subprocess.run(["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "probe"],
                             input=probe, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


@pytest.mark.parametrize("huge_pages, expected", [("on", "1"), ("off", None)])
def test_benchmark_cases_run_with_the_switch_as_asked(huge_pages, expected):
    env = bench_run.child_env({VAR: "1", "PATH": "/bin"}, 2, huge_pages)
    assert env.get(VAR) == expected
    assert env["OMP_NUM_THREADS"] == "2" and env["PATH"] == "/bin"
    with pytest.raises(ValueError, match="huge_pages='maybe': expected 'on' or 'off'"):
        bench_run.child_env({}, 1, "maybe")


def test_chapters_record_the_switch_in_their_provenance(smoke_build):
    records = [json.loads(line) for path in sorted((smoke_build / "results").glob("*/runs/*.jsonl"))
               for line in path.read_text().splitlines() if line.strip()]
    assert records
    values = {r["provenance"].get(VAR.lower()) for r in records if "provenance" in r}
    assert values == {"1"}, values
