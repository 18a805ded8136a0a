"""The bench's growth report (bench/scaling.py, `run.py --scaling`) and its Part 2 forms
table (`run.py --forms`), from made-up measurements: the slopes, the flag for a phase that
grows faster than linearly, the CSV and plots, and which tools a size skips."""

import csv
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/run.py)
import scaling  # noqa: E402  (bench/scaling.py)

SIZES = (1_000, 3_000, 10_000)


def measured(tool: str, phase: str, n: int, wall: float, status: str = "ok") -> dict:
    return {"workload": "chains", "n": n, "tool": tool,
            "runs": {phase: [{"status": status, "wall": wall, "rss_kib": n, "message": ""}]}}


def growing_run() -> list[dict]:
    """rulerun's full build linear, its dry run quadratic; make times out at the largest N."""
    raw = [measured("rulerun", "full", n, 1e-3 * n) for n in SIZES]
    raw += [measured("rulerun", "dry", n, 1e-8 * n * n) for n in SIZES]
    raw += [measured("make", "full", n, 2e-3 * n) for n in SIZES[:2]]
    raw.append(measured("make", "full", SIZES[2], 600.0, "timeout"))
    return raw


def test_growth_exponents_flag_the_rulerun_phase_that_grows_faster_than_linear():
    table = scaling.growth_table(scaling.points(growing_run()))
    rows = {tuple(cell.strip() for cell in line.split("|")[2:4]): line for line in table.splitlines()}
    assert "| 3,000–10,000 | 2.00 | 2.00 | **faster than linear**" in rows[("rulerun", "dry")]
    assert "| 3,000–10,000 | 1.00 | 1.00 | linear or better |" in rows[("rulerun", "full")]
    # make's timed-out point is no time: its slope is taken where it finished
    assert "| 1,000–3,000 | 1.00 |" in rows[("make", "full")]
    assert scaling.warnings(scaling.points(growing_run())) == [
        "GROWTH: rulerun chains dry grows as N^2.00 between N=3,000 and N=10,000 (above 1.15)"]


def test_the_growth_report_writes_the_figures_and_both_plots(tmp_path):
    text = scaling.write_growth(growing_run(), tmp_path / "scaling-x")
    with open(tmp_path / "scaling-x.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    dry = [r for r in rows if (r["tool"], r["phase"]) == ("rulerun", "dry")]
    assert [(int(r["n"]), float(r["median_wall_s"])) for r in dry] == [(1000, 0.01), (3000, 0.09), (10000, 1.0)]
    assert [r["status"] for r in rows if r["tool"] == "make"] == ["ok", "ok", "timeout"]
    for name in ("scaling-x-chains.png", "scaling-x-chains-memory.png"):
        image = (tmp_path / name).read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 10_000, name
    assert "no plot" not in text


def test_without_matplotlib_the_figures_still_come_and_say_how_to_get_the_plot(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    text = scaling.write_growth(growing_run(), tmp_path / "scaling-x")
    assert (tmp_path / "scaling-x.csv").exists()
    assert not list(tmp_path.glob("*.png"))
    assert "no plot: the scaling plot needs matplotlib: pip install -e '.[bench]'" in text
    assert "**faster than linear**" in text


def test_a_tool_that_timed_out_at_a_smaller_size_is_not_run_at_a_larger_one(tmp_path):
    args = run.parse_args(["--work", str(tmp_path), "--runs", "1"])
    chains = run.WORKLOADS["chains"]
    slow = run.Tool("snakemake", ["false"], {})
    earlier = run.Case(chains, 300, slow, tmp_path / "earlier")
    earlier.runs = {"dry": [run.Measurement("ok", 1.0)], "full": [run.Measurement("timeout", 10.0)]}
    (case,) = run.run_size([chains], 1_000, [slow], args, [earlier])
    assert {phase: [m.status for m in ms] for phase, ms in case.runs.items()} == {
        phase: ["skipped"] for phase in chains.phases}
    assert case.runs["dry"][0].message == "timed out at N=300"
    assert not case.root.exists()  # its files were not even generated
    # the same tool is run at a size below the one it timed out at
    assert run.timed_out_at([earlier], chains, 100, slow) is None


def test_the_part_2_forms_are_measured_with_rulerun_alone():
    args = run.parse_args(["--forms"])
    assert args.workloads == ["plain", "expand", "inputfn"] and args.tools == ["rulerun"]
    make = run.Tool("make", ["make"], {})
    assert run.run_size([run.WORKLOADS["expand"]], 10, [make], args) == []
    # measured side by side, taking turns, since their ratios compare them with each other
    assert run.workload_groups(["chains", *args.workloads, "fanin"]) == [
        [run.WORKLOADS["chains"]], [run.WORKLOADS["fanin"]], [run.WORKLOADS[f] for f in args.workloads]]


def test_the_forms_table_gives_each_form_over_plain_and_flags_a_target_missed():
    def case(form: str, noop: float) -> run.Case:
        c = run.Case(run.WORKLOADS[form], 1_000, run.Tool("rulerun", ["rulerun"], {}), Path("."))
        c.runs = {"dry": [run.Measurement("ok", 1.0)], "noop": [run.Measurement("ok", noop)]}
        return c

    table = run.forms_table([case("plain", 0.1), case("expand", 0.11), case("inputfn", 0.5)])
    noop = next(line for line in table.splitlines() if "| noop |" in line)
    cells = [cell.strip() for cell in noop.split("|")[1:-1]]
    assert cells[5:] == ["1.10× t", "5.00× t **over 1.2×**", "4.55× t"]
    assert "| full |" in table and "n/a" in table  # a phase not measured says so
    assert run.forms_table([case("plain", 0.1)]) == ""  # nothing to compare
