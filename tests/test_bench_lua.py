"""The bench's lua workload (bench/generate.py, bench/luasources.py) without the network: its
three build files plan the same jobs, a touched source still compiles, and a download that
does not match the pinned SHA-256 is refused."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402  (bench/generate.py)
import luasources  # noqa: E402  (bench/luasources.py)
import run  # noqa: E402  (bench/run.py)


@pytest.fixture
def stub_sources(tmp_path, monkeypatch):
    """A cache holding one tiny C file per object, standing in for Lua's sources."""
    cache = tmp_path / "cache"
    unpacked = cache / "lua-5.4.8"
    unpacked.mkdir(parents=True)
    for name in luasources.CORE + luasources.LIBS + ["lua"]:
        (unpacked / f"{name}.c").write_text(f"int {name}_x;\n")
    (unpacked / "lua.h").write_text("/* header */\n")
    luasources.lua_dir.cache_clear()
    monkeypatch.setattr(luasources, "CACHE", cache)
    monkeypatch.setattr(luasources, "lua_dir", lambda cache_dir=cache: unpacked)
    return unpacked


def planned_outputs(tool: str, root: Path) -> set[str]:
    if tool == "rulerun":
        dry = subprocess.run([sys.executable, "-m", "rulerun", "-n", "all"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
        return {line.split(": ", 1)[1] for line in dry.splitlines() if line.startswith("rule ")}
    dry = subprocess.run(["make", "-n", "all"], cwd=root, capture_output=True, text=True, check=True).stdout
    return {line.split(" -o ")[1].split()[0] if " -o " in line else line.split()[2]
            for line in dry.splitlines() if line.startswith(("gcc", "ar "))}


def test_rulerun_and_make_files_plan_the_same_jobs(stub_sources, tmp_path):
    planned = {}
    for tool in ("rulerun", "make"):
        root = tmp_path / tool
        generate.generate("lua", 33, tool, root)
        assert sorted(p.name for p in (root / "src").iterdir()) == sorted(p.name for p in stub_sources.iterdir())
        planned[tool] = planned_outputs(tool, root)
    assert planned["rulerun"] == planned["make"] == set(generate.lua_outputs(33))
    ninja = generate.lua_ninja(33)
    assert all(f"build {output}:" in ninja for output in generate.lua_outputs(33))


def test_touching_a_source_appends_a_comment_it_still_compiles_with(tmp_path):
    source = tmp_path / "src" / "lvm.c"
    source.parent.mkdir()
    source.write_text("int lvm_x;\n")
    run.touch_source(tmp_path, "src/lvm.c")
    assert source.read_text().startswith("int lvm_x;\n/* edited ")
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / "lvm.o"), str(source)], check=True)


def test_a_download_with_another_checksum_is_refused(tmp_path, monkeypatch):
    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, size=-1):
            data, self.data = getattr(self, "data", b"not lupa"), b""
            return data

    monkeypatch.setattr(luasources.urllib.request, "urlopen", lambda url, timeout: Response())
    luasources.lua_dir.cache_clear()
    with pytest.raises(SystemExit, match="does not have the SHA-256"):
        luasources.lua_dir(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-downloaded left to pass for the archive
