"""One router per audience: ``V1`` (their paths under /v1) and ``ops`` (at the root)."""

from api.routes import bank, insurer, ledger, ops, regulator, witness

V1 = (insurer.router, bank.router, regulator.router, ledger.router)
ROUTERS = (*V1, witness.router, ops.router)

__all__ = ["ROUTERS", "V1", "bank", "insurer", "ledger", "ops", "regulator", "witness"]
