"""Maps the card's top-level folders onto the ``balancedesk`` namespace.

``core/`` installs as ``balancedesk.core``, ``gui/`` as ``balancedesk.gui`` and ``resources/`` as
``balancedesk.resources``, so nothing generic such as ``core`` lands in site-packages. Every other
setting is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {"core": "balancedesk.core", "gui": "balancedesk.gui", "resources": "balancedesk.resources"}

package_dir: dict[str, str] = {}
packages: list[str] = []
for folder, name in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
