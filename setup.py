"""Maps the card's top-level folders onto the ``balancedesk`` namespace.

``core/`` installs as ``balancedesk.core``, ``gui/`` as ``balancedesk.gui`` and ``resources/`` as
``balancedesk.resources``, so nothing generic such as ``core`` lands in site-packages. Every other
setting is in pyproject.toml.
"""

import glob
import sys

from setuptools import Extension, find_packages, setup

FOLDERS = {"core": "balancedesk.core", "gui": "balancedesk.gui", "resources": "balancedesk.resources"}

package_dir: dict[str, str] = {}
packages: list[str] = []
for folder, name in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

# The native data plane (core/proxy/engine/*.c behind engine.h, Linux epoll): L4, and the L7 fast path.
# Optional: where it cannot be built (no C compiler, not Linux) the balancer uses the asyncio shells
# (core/proxy/tcp.py, http.py) with the same behaviour.
ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(Extension("balancedesk.core.proxy._engine", sorted(glob.glob("core/proxy/engine/*.c")),
                                 depends=["core/proxy/engine/engine.h"], optional=True,
                                 extra_compile_args=["-O2", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra",
                                                     "-Wno-unused-parameter",
                                                     "-Wno-missing-field-initializers"]))

setup(packages=packages, package_dir=package_dir, ext_modules=ext_modules)
