"""Compile contracts/*.sol with the pinned npm solc and write contracts/build/<Name>.json.

    python -m contracts.build            compile and (re)write every artifact
    python -m contracts.build --check    exit 1 and name each artifact that is stale

The compiler is the npm package `solc` (solcjs, the same compiler built to wasm) at the version
package.json pins, driven through its standard-JSON interface by `node`. Settings are fixed
here (optimizer on, 200 runs, EVM version pinned) so a given source always yields the same
bytes. An artifact is {"abi", "bytecode", "contractName", "deployedBytecode", "solcVersion",
"sourceSha256"}, written with sorted keys, two-space indent and a trailing newline, and is
committed: `check_artifacts()` (and a unit test) tells when one no longer matches its source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts.errors import CompileError, ToolchainError
from contracts.toolchain import REPO_ROOT, SOLC_PACKAGE, ensure_tools, get_pinned_version

CONTRACTS_DIR = Path(__file__).resolve().parent
BUILD_DIR = CONTRACTS_DIR / "build"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
COMPILE_TIMEOUT_S = 120

# Reads a standard-JSON input on stdin, prints {"version", "output"} on stdout.
_SOLCJS_DRIVER = """
const solc = require(process.argv[1]);
const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(Buffer.concat(chunks).toString('utf8')));
  process.stdout.write(JSON.stringify({version: solc.version(), output: output}));
});
"""


def compute_source_sha256(source: Path) -> str:
    """Hex SHA-256 of a source file's bytes, as recorded in its artifacts."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def get_sources() -> list[Path]:
    """Every contracts/*.sol, sorted by name."""
    return sorted(CONTRACTS_DIR.glob("*.sol"))


def compute_standard_input(sources: list[Path]) -> dict[str, Any]:
    """The solc standard-JSON input for `sources`, with this project's fixed settings."""
    return {
        "language": "Solidity",
        "sources": {
            source.relative_to(REPO_ROOT).as_posix(): {"content": source.read_text("utf-8")}
            for source in sources
        },
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def run_solcjs(standard_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Run the pinned npm solc on a standard-JSON input; return (long version, output)."""
    ensure_tools()
    try:
        completed = subprocess.run(
            ["node", "-e", _SOLCJS_DRIVER, str(SOLC_PACKAGE)],
            input=json.dumps(standard_input),
            capture_output=True,
            text=True,
            check=True,
            timeout=COMPILE_TIMEOUT_S,
        )
    except FileNotFoundError as exc:
        raise ToolchainError("node is not on PATH") from exc
    except subprocess.CalledProcessError as exc:
        raise ToolchainError(f"solcjs failed:\n{exc.stderr[-2000:]}") from exc
    result = json.loads(completed.stdout)
    return str(result["version"]), result["output"]


def verify_compiler_version(long_version: str) -> None:
    """Raise unless the solc that ran is the version package.json pins."""
    pinned = get_pinned_version("solc")
    if not long_version.startswith(pinned + "+"):
        raise ToolchainError(f"solc {long_version} ran, but package.json pins {pinned}")


def verify_no_errors(output: dict[str, Any]) -> None:
    """Raise CompileError when solc's output lists any error (warnings pass)."""
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError([e.get("formattedMessage", e.get("message", "")) for e in errors])


def compile_artifacts() -> dict[str, dict[str, Any]]:
    """Compile every contracts/*.sol; return {contract name: artifact}."""
    sources = get_sources()
    if not sources:
        return {}
    long_version, output = run_solcjs(compute_standard_input(sources))
    verify_compiler_version(long_version)
    verify_no_errors(output)
    artifacts: dict[str, dict[str, Any]] = {}
    for source in sources:
        key = source.relative_to(REPO_ROOT).as_posix()
        for name, compiled in sorted(output["contracts"].get(key, {}).items()):
            if name in artifacts:
                raise CompileError([f"contract name {name} is defined twice in contracts/"])
            artifacts[name] = {
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "contractName": name,
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "solcVersion": long_version,
                "sourceSha256": compute_source_sha256(source),
            }
    return artifacts


def compute_artifact_text(artifact: dict[str, Any]) -> str:
    """The exact bytes an artifact is stored as: sorted keys, indent 2, trailing newline."""
    return json.dumps(artifact, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def write_artifacts() -> list[Path]:
    """Compile and write contracts/build/<Name>.json for every contract; return the paths."""
    BUILD_DIR.mkdir(exist_ok=True)
    written = []
    for name, artifact in compile_artifacts().items():
        path = BUILD_DIR / f"{name}.json"
        path.write_text(compute_artifact_text(artifact), encoding="utf-8")
        written.append(path)
    return written


def get_artifact(name: str) -> dict[str, Any]:
    """The committed artifact of contract `name` (no compiler needed)."""
    return json.loads((BUILD_DIR / f"{name}.json").read_text(encoding="utf-8"))


def check_artifacts(build_dir: Path = BUILD_DIR) -> list[str]:
    """Names of contracts whose committed artifact does not match a fresh compile.

    A name is listed when its artifact is missing, records another source SHA-256, differs in
    any byte from what the pinned compiler produces now, or has no contract left in the
    sources. An empty list means `build_dir` is exactly what `write_artifacts` would write.
    """
    expected = {name: compute_artifact_text(a) for name, a in compile_artifacts().items()}
    committed = {path.stem: path for path in build_dir.glob("*.json")}
    stale = [name for name in expected if name not in committed]
    stale += [name for name in committed if name not in expected]
    stale += [
        name
        for name, text in expected.items()
        if name in committed and committed[name].read_text(encoding="utf-8") != text
    ]
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale artifacts")
    args = parser.parse_args(argv)
    if args.check:
        stale = check_artifacts()
        for name in stale:
            print(f"stale: contracts/build/{name}.json", file=sys.stderr)
        return 1 if stale else 0
    for path in write_artifacts():
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
