"""Errors of the contracts package (the Solidity build, Anvil and the registry comparator).

Every error raised by contracts/ derives from ``ContractsError``::

    ContractsError
    ├── ToolchainError           node, npm, solc or anvil missing, or an install that failed
    ├── CompileError             solc refused a source (``messages``: its formatted errors)
    ├── AnvilError               the local Anvil node did not start, or funds other accounts
    └── BenchError               a benchmark transaction was refused or got no receipt in time
"""


class ContractsError(Exception):
    """Root of every error raised by contracts/."""


class ToolchainError(ContractsError):
    """A tool this package drives (node, npm, solc, anvil) is missing or failed to install."""


class CompileError(ContractsError):
    """solc reported errors; ``messages`` holds its formatted output, one string per error."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("solc failed:\n" + "\n".join(messages))
        self.messages = messages


class AnvilError(ContractsError):
    """Anvil did not answer in time, exited early, or funds other accounts than expected."""


class BenchError(ContractsError):
    """A benchmark transaction was refused by the node or got no receipt in time."""
