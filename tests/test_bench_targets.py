"""`bench/run.py --targets`: what one run measures for issue 17, and its table of the targets
(bench/targets.py), judged from made-up measurements: met, missed by how much, not measured."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/run.py)
import scaling  # noqa: E402
import targets  # noqa: E402


def point(workload, n, tool, phase, wall, mib=0.0, status="ok"):
    return scaling.Point(workload, n, tool, phase, status, 1, wall, mib * 1024)


def verdicts(found):
    table = targets.targets_table(found)
    return {line.split("|")[1].strip(): line.split("|")[2:4] for line in table.splitlines()[4:]}


def test_a_ratio_target_is_met_at_the_limit_and_missed_above_it_by_how_much():
    trivial = targets.TARGETS[0]
    met = [point("trivial", 2000, "rulerun", "full", 2.4), point("trivial", 2000, "make", "full", 2.0)]
    assert targets.judge(met, trivial) == ("1.20× (2.4 s against 2 s)", "**met**")
    missed = [point("trivial", 2000, "rulerun", "full", 3.0), point("trivial", 2000, "make", "full", 2.0)]
    assert targets.judge(missed, trivial) == ("1.50× (3 s against 2 s)", "**missed** by 25%")


def test_absolute_targets_read_the_time_or_the_peak_memory_at_their_size():
    found = [point("chains", 100_000, "rulerun", "dry", 3.9, mib=215),
             point("chains", 10_000, "rulerun", "dry", 0.4, mib=50),
             point("chains", 100_000, "rulerun", "full", 250.0, mib=360)]
    rows = verdicts(found)
    assert rows["dry run of 100,000 chains under 2 s"] == [" 3.9 s ", " **missed** by 95% "]
    assert rows["dry run of 100,000 chains under 250 MiB"] == [" 215 MiB ", " **met** "]
    assert rows["full build of 100,000 chains under 350 MiB"] == [" 360 MiB ", " **missed** by 3% "]


def test_a_target_the_run_did_not_measure_or_whose_peer_failed_is_not_met():
    found = [point("chains", 10_000, "rulerun", "noop", 0.05),
             point("chains", 10_000, "ninja", "noop", 0.0, status="timeout")]
    rows = verdicts(found)
    assert rows["no-op at 10,000 chains within 1.0× Ninja"][1].strip() == "not measured (ninja)"
    assert rows["the Lua build, full, within 1.0× make"][1].strip() == "not measured (rulerun, make)"
    assert "met" not in "".join(cell for row in rows.values() for cell in row)


def test_the_growth_target_is_judged_by_rulerun_s_steepest_phase():
    linear = [point("chains", n, "rulerun", "full", n * 1e-3) for n in (1_000, 10_000)]
    steep = [point("chains", n, "rulerun", "dry", n * n * 1e-8) for n in (1_000, 10_000)]
    assert targets.growth_verdict(linear)[1] == "**met**"
    assert targets.growth_verdict(linear + steep) == ("steepest: dry 2.00 (1,000–10,000)",
                                                      "**missed**: faster than linear")
    # make growing faster than linearly is make's affair
    assert targets.growth_verdict(linear + [point("chains", n, "make", "dry", n * n) for n in (1_000, 10_000)])[1] == "**met**"


def test_a_targets_run_grows_chains_with_every_tool_and_measures_the_rest_at_their_own_size(tmp_path):
    args = run.parse_args(["--targets", "--work", str(tmp_path)])
    assert args.scaling and args.workloads == ["chains", "trivial", "lua"]
    assert run.sizes_for(run.WORKLOADS["chains"], args) == list(run.SCALING_SIZES)
    assert run.sizes_for(run.WORKLOADS["trivial"], args) == [2_000]
    tools = [run.Tool(name, [name], {}) for name in ("rulerun", "make", "ninja", "snakemake")]
    assert [t.name for t in run.tools_for([run.WORKLOADS["chains"]], tools, args)] == [
        "rulerun", "make", "ninja", "snakemake"]
    assert [t.name for t in run.tools_for([run.WORKLOADS["lua"]], tools, args)] == ["rulerun", "make", "ninja"]
    # outside --targets, --sizes applies to every workload that scales, and every tool runs
    plain = run.parse_args(["--sizes", "500", "--work", str(tmp_path)])
    assert run.sizes_for(run.WORKLOADS["trivial"], plain) == [500]
    assert len(run.tools_for([run.WORKLOADS["lua"]], tools, plain)) == 4


def test_the_growth_report_leaves_out_workloads_measured_at_one_size(tmp_path):
    raw = [{"workload": w, "n": n, "tool": "rulerun", "runs": {"full": [{"status": "ok", "wall": n * 1e-3,
                                                                        "rss_kib": 1, "message": ""}]}}
           for w, n in (("chains", 1_000), ("chains", 3_000), ("trivial", 2_000))]
    scaling.write_growth(raw, tmp_path / "s")
    assert "trivial" not in (tmp_path / "s.csv").read_text()
    assert not (tmp_path / "s-trivial.png").exists()
