"""One router per audience: ``V1`` (their paths under /v1) and ``ops`` (at the root);
``console`` serves the regulator's console page at the root and ``/v1/me``."""

from api.routes import alerts, bank, console, credit, insurer, ledger, ops, regulator, witness

V1 = (insurer.router, bank.router, regulator.router, ledger.router, credit.router, alerts.router)
ROUTERS = (*V1, witness.router, ops.router, console.router)

__all__ = [
    "ROUTERS",
    "V1",
    "alerts",
    "bank",
    "console",
    "credit",
    "insurer",
    "ledger",
    "ops",
    "regulator",
    "witness",
]
