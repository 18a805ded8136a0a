"""The Lua 5.4 sources the `lua` workload builds: a real C project of 33 translation units.

This machine reaches no site but the package registries, so the sources come from PyPI:
the source distribution of lupa 2.8 carries Lua 5.4.8 in third-party/lua54. It is
downloaded once into bench/work/cache, checked against its SHA-256, and unpacked there.
Only the files a build of the interpreter needs are taken: every .c and .h but onelua.c
(all of Lua in one file) and ltests.c (Lua's internal test harness).
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
from functools import cache
from pathlib import Path

SDIST_URL = ("https://files.pythonhosted.org/packages/c3/a6/"
             "0f869fbb07c393f15473b1eefefb7b5bec162fb7481803d040ed4dc46002/lupa-2.8.tar.gz")
SDIST_SHA256 = "d8022641b9ec8ecf2c5ecbe9f47e5a70e0b87c4b5ae921b92cb02a638e0acd08"
INSIDE = "lupa-2.8/third-party/lua54/"
LEFT_OUT = {"onelua.c", "ltests.c"}
CACHE = Path(__file__).resolve().parent / "work" / "cache"

# The library's objects, as Lua's own makefile lists them (core, then auxiliary and libraries).
CORE = ("lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes lparser "
        "lstate lstring ltable ltm lundump lvm lzio").split()
LIBS = "lauxlib lbaselib lcorolib ldblib liolib lmathlib loadlib loslib lstrlib ltablib lutf8lib linit".split()
CFLAGS = "-O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX"
LINK = "-Wl,-E src/lua.o src/liblua.a -lm -ldl"


@cache
def lua_dir(cache_dir: Path = CACHE) -> Path:
    """The unpacked Lua sources, fetched and checked the first time."""
    unpacked = cache_dir / "lua-5.4.8"
    if (unpacked / "lua.h").exists():
        return unpacked
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / "lupa-2.8.tar.gz"
    if not archive.exists() or _sha256(archive) != SDIST_SHA256:
        partial = archive.with_suffix(".part")
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
        if _sha256(partial) != SDIST_SHA256:
            partial.unlink()
            raise SystemExit(f"bench: {SDIST_URL} does not have the SHA-256 it should ({SDIST_SHA256})")
        partial.rename(archive)
    staging = cache_dir / "lua-5.4.8.part"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(INSIDE)
            if member.isfile() and member.name.startswith(INSIDE) and "/" not in name \
                    and name.endswith((".c", ".h")) and name not in LEFT_OUT:
                (staging / name).write_bytes(tar.extractfile(member).read())
    staging.rename(unpacked)
    return unpacked


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_names() -> list[str]:
    """Paths, relative to a workload's root, of the sources (src/NAME.c and src/NAME.h)."""
    return sorted(f"src/{p.name}" for p in lua_dir().iterdir())


def copy_sources(dest: Path) -> None:
    (dest / "src").mkdir(parents=True, exist_ok=True)
    for path in lua_dir().iterdir():
        shutil.copy2(path, dest / "src" / path.name)
