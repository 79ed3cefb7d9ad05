"""A local Anvil node for tests and benchmarks, started and stopped as a context manager.

    with AnvilProcess() as node:
        node.url              http://127.0.0.1:<free port>
        node.private_keys     the funded accounts' keys, "0x..." hex, deployer first
        node.accounts         the same as eth_account LocalAccounts

Anvil comes from the pinned npm package @foundry-rs/anvil-linux-amd64 (`ensure_tools` installs
it). It mines a block as soon as a transaction arrives (automine), funds `accounts` accounts
derived from Anvil's well-known test mnemonic, and is killed on exit. Those keys are public:
this node is for loopback tests only.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from contracts.errors import AnvilError, ToolchainError
from contracts.toolchain import ensure_tools, get_anvil_binary

__all__ = ["ANVIL_MNEMONIC", "AnvilProcess", "compute_dev_accounts", "ensure_tools", "find_anvil"]

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_ACCOUNTS = 40  # 32 benchmark clients, a deployer, and spare
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def find_anvil() -> Path:
    """The anvil executable: the pinned npm package's binary, installing it if needed.

    Falls back to an `anvil` on PATH only when npm cannot provide the package.
    """
    try:
        ensure_tools()
        return get_anvil_binary()
    except ToolchainError:
        on_path = shutil.which("anvil")
        if on_path is None:
            raise
        return Path(on_path)


def compute_dev_accounts(count: int, mnemonic: str = ANVIL_MNEMONIC) -> list[LocalAccount]:
    """The first `count` accounts of `mnemonic` on path m/44'/60'/0'/0/i, as Anvil funds them."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
        for index in range(count)
    ]


def get_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call_rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call over HTTP with the standard library; returns its result or raises."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise AnvilError(f"{method} answered {answer['error']}")
    return answer["result"]


class AnvilProcess:
    """Start Anvil on a free loopback port; stop it on exit. Not reusable once exited."""

    def __init__(
        self,
        accounts: int = DEFAULT_ACCOUNTS,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        *,
        port: int = 0,
        state: Path | None = None,
    ) -> None:
        """`port` 0: a free one. `state`: a file Anvil loads at start and writes at exit
        (``--state``), so that a node stopped and started again keeps its chain."""
        if accounts < 1:
            raise ValueError("Anvil needs at least one funded account")
        self.account_count = accounts
        self.startup_timeout = startup_timeout
        self.state = state
        self.fixed_port = port
        self.port = 0
        self.url = ""
        self.chain_id = 0
        self.accounts: list[LocalAccount] = []
        self.private_keys: tuple[str, ...] = ()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __enter__(self) -> AnvilProcess:
        binary = find_anvil()
        self.accounts = compute_dev_accounts(self.account_count)
        self.private_keys = tuple("0x" + account.key.hex() for account in self.accounts)
        self.port = self.fixed_port or get_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()
        command = [str(binary), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--accounts", str(self.account_count), "--mnemonic", ANVIL_MNEMONIC]
        if self.state is not None:
            command += ["--state", str(self.state)]
        command += ["--silent"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self.chain_id = self._wait_until_ready()
            self._verify_accounts()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _wait_until_ready(self) -> int:
        """Poll eth_chainId until Anvil answers; raise with its log if it exits or times out."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise AnvilError(f"anvil exited with {self._process.returncode}: {self._tail()}")
            with contextlib.suppress(OSError):
                return int(call_rpc(self.url, "eth_chainId", timeout=1.0), 16)
            time.sleep(0.05)
        raise AnvilError(f"anvil gave no answer within {self.startup_timeout}s: {self._tail()}")

    def _verify_accounts(self) -> None:
        """Fail closed if the keys we derived are not the accounts Anvil funded."""
        funded = [address.lower() for address in call_rpc(self.url, "eth_accounts")]
        derived = [account.address.lower() for account in self.accounts]
        if funded != derived:
            raise AnvilError(f"anvil funds {funded[:2]}..., the mnemonic gives {derived[:2]}...")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
