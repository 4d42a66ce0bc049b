"""Build of the Cython/C extensions.

Every ``.pyx`` under ``core/`` and ``miniapps/`` becomes an extension module of the same dotted
name. C sources come by convention: ``core/src/common/*.c`` go into every core extension, and
``core/src/<stem>/*.c`` into the extension whose file stem is ``<stem>`` (``core/smm.pyx`` gets
``core/src/smm/*.c``). ISA-specific code lives in those C files behind per-function
``__attribute__((target(...)))``, so the modules stay runnable on any x86-64 (or aarch64) CPU.

Build-time knobs (environment):
  SMM_MNK         LIBXSMM-style list of shapes that get fully unrolled kernels, e.g. "4 5 8, 5 25 5"
  SMM_BUILD_ONLY  comma-separated module names to build (development: build one module quickly)
  SMM_DEBUG=1     -O0 -g and bounds checks in Cython (for debugging)
"""
import glob
import os
import subprocess
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _generate_sources():
    """Run build-time code generators (``core/src/*/gen_*.py``): they write ``*_gen.c`` files."""
    for gen in sorted(glob.glob(os.path.join(HERE, "core", "src", "*", "gen_*.py"))):
        subprocess.check_call([sys.executable, gen], cwd=HERE)


def _extensions():
    only = {s.strip() for s in os.environ.get("SMM_BUILD_ONLY", "").split(",") if s.strip()}
    debug = os.environ.get("SMM_DEBUG") == "1"
    cflags = ["-O0", "-g"] if debug else ["-O3"]
    # -fno-math-errno lets gcc inline sqrt; no -ffast-math: NaN/Inf semantics are part of the contract.
    cflags += ["-fopenmp", "-fno-math-errno", "-std=gnu11", "-Wno-unused-function"]
    common = sorted(glob.glob("core/src/common/*.c"))
    exts = []
    for pyx in sorted(glob.glob("core/**/*.pyx", recursive=True) + glob.glob("miniapps/**/*.pyx", recursive=True)):
        name = os.path.splitext(pyx)[0].replace(os.sep, ".")
        if only and name not in only:
            continue
        stem = os.path.splitext(os.path.basename(pyx))[0].lstrip("_")
        sources = [pyx] + common + sorted(glob.glob(f"core/src/{stem}/**/*.c", recursive=True))
        # Headers next to the .pyx too (the mini-apps' kernel templates): an edit must rebuild.
        depends = sorted(glob.glob("core/include/*.h") + glob.glob(f"core/src/{stem}/**/*.h", recursive=True)
                         + glob.glob(os.path.join(os.path.dirname(pyx), "*.h")))
        exts.append(Extension(
            name, sources, depends=depends,
            include_dirs=[numpy.get_include(), "core/include", f"core/src/{stem}"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=cflags, extra_link_args=["-fopenmp"],
        ))
    return exts


def _parallel_compile(compiler, jobs):
    """Compile one extension's C files concurrently (setuptools compiles them one by one; the
    kernel files are many and each takes seconds at -O3)."""
    import types
    from concurrent.futures import ThreadPoolExecutor

    def compile(self, sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
        macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)
        todo = [o for o in objects if o in build]
        todo.sort(key=lambda o: -os.path.getsize(build[o][0]))  # biggest first: better packing

        newest_dep = max((os.path.getmtime(d) for d in depends or () if os.path.exists(d)), default=0.0)

        def one(obj):
            src, ext = build[obj]
            # Incremental: an object newer than its source and every header is kept.
            if (not self.force and os.path.exists(obj)
                    and os.path.getmtime(obj) >= max(os.path.getmtime(src), newest_dep)):
                return
            self._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            list(pool.map(one, todo))
        return objects

    compiler.compile = types.MethodType(compile, compiler)


class BuildExt(build_ext):
    def build_extensions(self):
        jobs = int(os.environ.get("SMM_BUILD_JOBS", "0") or 0) or len(os.sched_getaffinity(0))
        _parallel_compile(self.compiler, jobs)
        super().build_extensions()


_generate_sources()
setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={"language_level": 3, "boundscheck": os.environ.get("SMM_DEBUG") == "1",
                             "wraparound": False, "cdivision": True, "initializedcheck": False},
        nthreads=int(os.environ.get("SMM_CYTHON_JOBS", "0") or 0),
    ),
)
