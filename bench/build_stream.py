"""Builds bench/_stream (the STREAM triad of bench/smm.py) in place: ``python bench/build_stream.py``.

Uses its own build directory (build/tmp-bench-stream) so it never touches the library's build.
bench/smm.py calls build() itself when the module is missing or older than _stream.pyx.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def is_stale():
    src = os.path.join(HERE, "_stream.pyx")
    built = [f for f in os.listdir(HERE) if f.startswith("_stream.") and f.endswith((".so", ".pyd"))]
    return not built or min(os.path.getmtime(os.path.join(HERE, f)) for f in built) < os.path.getmtime(src)


def build(quiet=True):
    from Cython.Build import cythonize
    from setuptools import Extension, setup

    ext = Extension("_stream", [os.path.join(HERE, "_stream.pyx")],
                    extra_compile_args=["-O3", "-fopenmp"], extra_link_args=["-fopenmp"])
    tmp = os.path.join(ROOT, "build", "tmp-bench-stream")
    cwd = os.getcwd()
    os.chdir(HERE)  # --inplace puts the module next to its source
    try:
        setup(name="bench-stream", ext_modules=cythonize([ext], quiet=quiet, language_level=3,
                                                         build_dir=tmp),
              script_args=["-q", "build_ext", "--inplace", "-t", tmp, "-b", os.path.join(tmp, "lib")])
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    build(quiet="-v" not in sys.argv)
    print("built", [f for f in os.listdir(HERE) if f.startswith("_stream.") and f.endswith(".so")])
