"""Where the pinned npm tools live, and `ensure_tools` to install them.

The versions are pinned once, in the repository's package.json (devDependencies) and its
package-lock.json; node_modules/ at the repository root is git-ignored and rebuilt with
`npm ci`. Both packages ship their own code (solc as JavaScript/wasm, anvil as a static binary),
so installing them fetches nothing from outside the npm registry.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from contracts.errors import ToolchainError

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
SOLC_PACKAGE = NODE_MODULES / "solc"
ANVIL_PACKAGE = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64"
NPM_INSTALL_TIMEOUT_S = 300


def get_pinned_version(package: str) -> str:
    """The exact version package.json pins for `package` (a devDependency)."""
    manifest = json.loads((REPO_ROOT / "package.json").read_text(encoding="utf-8"))
    try:
        return str(manifest["devDependencies"][package])
    except KeyError as exc:
        raise ToolchainError(f"package.json pins no devDependency {package!r}") from exc


def get_installed_version(package_dir: Path) -> str | None:
    """The version of the package installed in `package_dir`, or None when it is absent."""
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(manifest.get("version"))


def get_anvil_binary() -> Path:
    """The anvil executable inside the npm package (its package.json `bin` entry)."""
    manifest = json.loads((ANVIL_PACKAGE / "package.json").read_text(encoding="utf-8"))
    binary = manifest["bin"]["anvil"] if isinstance(manifest["bin"], dict) else manifest["bin"]
    return ANVIL_PACKAGE / binary


def is_installed() -> bool:
    """True when node_modules holds exactly the pinned solc and anvil, ready to run."""
    if get_installed_version(SOLC_PACKAGE) != get_pinned_version("solc"):
        return False
    anvil_pin = get_pinned_version("@foundry-rs/anvil-linux-amd64")
    if get_installed_version(ANVIL_PACKAGE) != anvil_pin:
        return False
    return get_anvil_binary().is_file()


def ensure_tools() -> None:
    """Install the pinned solc and anvil into node_modules/ unless they are already there.

    Runs `npm ci` (the lock file's exact tree). Raises ToolchainError when node or npm is
    missing or the install fails, so callers (and tests) can skip or stop with the reason.
    """
    if is_installed():
        return
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise ToolchainError(
                f"{tool} is not on PATH; install Node.js to build or run contracts"
            )
    command = ["npm", "ci", "--no-audit", "--no-fund"]
    try:
        subprocess.run(
            command,
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=NPM_INSTALL_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        raise ToolchainError(f"{' '.join(command)} failed:\n{exc.stderr[-2000:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{' '.join(command)} took over {NPM_INSTALL_TIMEOUT_S}s") from exc
    if not is_installed():
        raise ToolchainError(f"{' '.join(command)} ran but the pinned solc/anvil are not in place")
