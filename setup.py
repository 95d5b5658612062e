"""Builds slingshot_microservice's C++ module with CMake (pip install .).

EMBER_BUILD_DIR: reuse a configured Ember build tree instead of configuring a
new one (only the module target is built). CMAKE_ARGS: extra configure flags.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.environ.get("EMBER_BUILD_DIR")
        if build:
            build = Path(build).resolve()
        else:
            build = Path(self.build_temp).resolve() / "cmake"
            args = [
                "cmake", "-S", str(ROOT), "-B", str(build),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DEMBER_BUILD_TESTS=OFF", "-DEMBER_BUILD_EXAMPLES=OFF", "-DEMBER_BUILD_PERF=OFF",
                f"-DPython_EXECUTABLE={sys.executable}",
            ]
            if shutil.which("ninja"):
                args += ["-G", "Ninja"]
            args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
            subprocess.run(args, check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "slingshot_native"], check=True)
        built = list((build / "python" / "slingshot_microservice").glob("_native*.so"))
        if not built:
            raise RuntimeError(f"CMake built no _native module under {build}/python (is pybind11 installed?)")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


setup(
    packages=["slingshot_microservice"],
    package_dir={"": "bindings/python"},
    package_data={"slingshot_microservice": ["py.typed", "*.pyi"]},
    ext_modules=[Extension("slingshot_microservice._native", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
