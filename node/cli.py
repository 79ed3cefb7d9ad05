"""The `pfnode` command line.

pfnode verify [--db URL | --bundle FILE | --data DIR]   offline verification
pfnode export --out FILE [--db URL | --data DIR]         self-contained bundle
pfnode bench ledger [--entries N]                        ledger benchmark
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chain.errors import ChainError, VerificationError
from chain.verify import Replayer

Command = Callable[[argparse.Namespace], int]
DEFAULT_DATA = Path("data")


def db_url(args: argparse.Namespace) -> str:
    """The database URL: --db, else SQLite under --data."""
    if getattr(args, "db", None):
        return str(args.db)
    return f"sqlite:///{(Path(args.data) / 'ledger.db').resolve()}"


def cmd_verify(args: argparse.Namespace) -> int:
    from chain.bundle import BundleSource
    from chain.storage import Ledger
    from chain.verify import verify_database, verify_ledger

    if args.audit:
        return verify_audit_cli(args)
    replica = Path(args.data) / "replica.db"
    if not args.bundle and not args.db and replica.exists():
        return verify_follower(Path(args.data), f"sqlite:///{replica.resolve()}")
    pool = None
    if args.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("fork"))
    try:
        if args.bundle:
            report = verify_ledger(BundleSource(Path(args.bundle)), _replayer(args), pool)
            what = args.bundle
        else:
            with Ledger.open(db_url(args)) as ledger:
                report = verify_database(ledger, _replayer(args), pool)
            what = "database"
    except VerificationError as exc:
        print(
            f"BROKEN at {'height ' + str(exc.height) if exc.height is not None else 'genesis'}:"
            f" {exc.what}",
            file=sys.stderr,
        )
        return 1
    except ChainError as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
    finally:
        if pool is not None:
            pool.shutdown()
    print(
        f"OK {what}: {report.blocks} blocks, {report.entries} entries, "
        f"log root {report.log_root.hex() or '-'}, {report.checkpoints} checkpoints "
        f"(latest at size {report.latest_checkpoint}), {report.nodes_checked} Merkle nodes checked"
    )
    if args.anchored:
        return verify_anchored_cli(args)
    return 0


def verify_audit_cli(args: argparse.Namespace) -> int:
    """An audit report (JSON) against the genesis in --data: checkpoint and every proof."""
    import json

    from node.audit import verify_audit

    genesis = json.loads((Path(args.data) / "genesis.json").read_text())
    report = json.loads(Path(args.audit).read_text())
    try:
        check = verify_audit(report, genesis)
    except VerificationError as exc:
        print(f"BROKEN audit report: {exc.what}", file=sys.stderr)
        return 1
    print(
        f"OK audit report {report.get('from')}..{report.get('to')}: {check.proved} entries "
        f"proved in the signed checkpoint of size {check.size}"
        + (
            f"; {len(check.unproved)} cited entries after it, not yet provable"
            if check.unproved
            else ""
        )
    )
    return 0


def verify_anchored_cli(args: argparse.Namespace) -> int:
    """The ledger (verified above) against the checkpoints the anchor contract holds."""
    from chain.bundle import BundleSource, DatabaseSource
    from chain.storage import Ledger
    from contracts.anchor import AnchorChain
    from contracts.errors import ContractsError
    from node.anchorer import block_roots, verify_anchored
    from node.anchoring import log_id_of

    rpc, address = args.anchored
    try:
        chain = AnchorChain.connect(rpc, "0x" + "11" * 32, address, deadline=10)
        anchored, chain_log_id = chain.anchored(), chain.log_id()
    except (ContractsError, ValueError) as exc:
        print(f"cannot read the anchor contract {address} at {rpc}: {exc}", file=sys.stderr)
        return 2
    if args.bundle:
        source = BundleSource(Path(args.bundle))
        roots, genesis = block_roots(source), source.genesis
    else:
        with Ledger.open(db_url(args)) as ledger:
            roots, genesis = block_roots(DatabaseSource(ledger)), ledger.genesis
    if chain_log_id != log_id_of(genesis):
        print(
            f"BROKEN anchoring: contract {address} anchors log {chain_log_id.hex()}, "
            f"this ledger is {log_id_of(genesis).hex()}",
            file=sys.stderr,
        )
        return 1
    report = verify_anchored(roots, anchored)
    for problem in report.problems:
        print(f"BROKEN anchoring: {problem}", file=sys.stderr)
    if not report.ok:
        return 1
    last = max(anchored, default=0)
    print(
        f"OK anchored: {report.checked} checkpoints on-chain match the ledger (last at size {last})"
    )
    return 0


def cmd_anchor_deploy(args: argparse.Namespace) -> int:
    """Deploy CheckpointAnchor for this ledger's genesis and register its BLS validators."""
    import json

    from chain.errors import CheckpointError
    from contracts.anchor import AnchorChain
    from contracts.errors import ContractsError
    from node.anchoring import log_id_of, min_roles_of, validators_of

    genesis = json.loads((Path(args.data) / "genesis.json").read_text())
    try:
        validators = validators_of(genesis)
        if not validators:
            raise CheckpointError("genesis names no BLS validators")
        chain = AnchorChain.connect(args.rpc, Path(args.key).read_text().strip())
        address = chain.deploy(log_id_of(genesis), min_roles_of(genesis))
        for v in validators:
            chain.register(v.name, v.role, v.public, v.pop)
    except (ContractsError, CheckpointError, ValueError) as exc:
        print(f"cannot deploy: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(address + "\n")
    print(address)
    return 0


def verify_follower(data: Path, url: str) -> int:
    """A follower's replica: every block re-verified; any split-view evidence reported."""
    import json

    import sqlalchemy as sa

    from chain.replica import ReplicaStore, verify_replica

    genesis = json.loads((data / "genesis.json").read_text())
    store = ReplicaStore.open(url)
    try:
        blocks, size = verify_replica(store, genesis)
        with store.engine.connect() as conn:
            views = conn.execute(
                sa.text("SELECT kind, detected FROM node_split_views ORDER BY id")
            ).all()
    except VerificationError as exc:
        print(f"BROKEN at height {exc.height}: {exc.what}", file=sys.stderr)
        return 1
    except sa.exc.SQLAlchemyError:
        views = []
    finally:
        store.close()
    if views:
        for kind, detected in views:
            print(
                f"SPLIT VIEW ({kind}) detected {detected}: the sequencer signed two "
                "histories; evidence kept in node_split_views",
                file=sys.stderr,
            )
        return 1
    print(f"OK replica: {blocks} blocks, log size {size}; no split view seen")
    return 0


def _replayer(args: argparse.Namespace) -> Replayer | None:
    if getattr(args, "no_replay", False):
        return None
    try:
        from node.replay import DomainReplayer
    except ImportError:
        return None
    return DomainReplayer.for_args(args)


def cmd_export(args: argparse.Namespace) -> int:
    from chain.bundle import export_bundle
    from chain.storage import Ledger

    try:
        with Ledger.open(db_url(args)) as ledger:
            blocks, entries = export_bundle(ledger, Path(args.out))
    except ChainError as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {blocks} blocks, {entries} entries")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.which == "reliability":
        from node import bench_reliability

        return bench_reliability.run_reliability(args)
    if args.which == "anchor":
        from node import bench_anchor

        return bench_anchor.run_anchor(args)
    if args.which == "replication":
        from node import bench_replication

        return bench_replication.run_replication(args)
    if args.which == "compare":
        from node import bench_compare

        return bench_compare.run_compare(args)
    if args.which == "api":
        from node import bench_api

        return bench_api.run_api(args)
    if args.which == "alerts":
        from node import bench_alerts

        return bench_alerts.run_alerts(args)
    from node import bench

    return bench.run_ledger(args)


def cmd_init(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from node.genesis import init_demo

    if args.consortium:
        from node.genesis import init_consortium

        root = Path(args.consortium)
        if root.exists() and any(root.iterdir()):
            print(f"{root} is not empty; left as it is", file=sys.stderr)
            return 2
        urls = None
        if args.db_pattern:
            from node.genesis import CONSORTIUM_DIRS

            urls = {org: args.db_pattern.format(name=name) for org, name in CONSORTIUM_DIRS.items()}
        dirs = init_consortium(root, datetime.now(UTC), urls)
        for org, path in dirs.items():
            print(f"{org}: {path}")
        return 0
    if not args.demo:
        print(
            "say --demo (one node, the demo consortium) or --consortium DIR (one data "
            "directory per institution)",
            file=sys.stderr,
        )
        return 2
    genesis, created = init_demo(Path(args.data), args.db, datetime.now(UTC))
    orgs = ", ".join(o["id"] for o in genesis["orgs"])
    if created:
        print(
            f"initialised {args.data}: demo consortium {orgs}; "
            f"tokens in {Path(args.data) / 'demo-tokens.json'}"
        )
    else:
        print(f"{args.data} is already initialised ({orgs}); left as it is")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """One process, or N uvicorn workers on one port: one leads, the others forward."""
    import os

    import uvicorn

    from api.app import app_from_env
    from chain.storage import normalise_url

    if args.role == "follower":
        return serve_follower(args)
    os.environ["PFNODE_DATA"] = str(Path(args.data))
    os.environ["PFNODE_DB"] = args.db or ""
    os.environ["PFNODE_MAX_QUEUE"] = str(args.max_queue)
    os.environ["PFNODE_INTERNAL_HOST"] = args.internal_host
    os.environ["PFNODE_WITNESSES"] = ",".join(args.witness)
    os.environ["PFNODE_ANCHOR"] = "" if args.anchor == "off" else args.anchor
    contract = args.anchor_contract or ""
    if contract.startswith("@"):  # @FILE: the address `pfnode anchor deploy --out` wrote
        contract = Path(contract[1:]).read_text().strip()
    os.environ["PFNODE_ANCHOR_CONTRACT"] = contract
    os.environ["PFNODE_ANCHOR_KEY"] = (
        Path(args.anchor_key).read_text().strip() if args.anchor_key else ""
    )
    os.environ["PFNODE_ANCHOR_EVERY_BLOCKS"] = str(args.anchor_every_blocks)
    os.environ["PFNODE_ANCHOR_EVERY_SECONDS"] = str(args.anchor_every_seconds)
    url = normalise_url(db_url(args))
    if args.workers > 1:
        print(
            f"pfnode serving {url} on http://{args.host}:{args.port} with {args.workers} workers",
            flush=True,
        )
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            timeout_graceful_shutdown=3,
        )
        return 0
    try:
        app = app_from_env()
    except ChainError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"pfnode serving {url} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=3
    )
    return 0


def serve_follower(args: argparse.Namespace) -> int:
    """An institution's own node: replicates, verifies, witnesses, forwards its entries."""
    import uvicorn

    from api.app import create_app
    from node.follower import FollowerConfig, FollowerNode

    if not args.upstream or not args.org:
        print("a follower needs --upstream URL and --org ID", file=sys.stderr)
        return 2
    try:
        node = FollowerNode(FollowerConfig(Path(args.data), args.upstream, args.org, args.db))
    except (ChainError, OSError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    app = create_app(node)  # type: ignore[arg-type]
    node.attach(app)
    print(
        f"pfnode follower for {args.org} of {args.upstream} on http://{args.host}:{args.port}",
        flush=True,
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=3
    )
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from chain.errors import StorageError
    from node.migrations import upgrade

    try:
        revision = upgrade(db_url(args))
    except StorageError as exc:
        print(f"cannot upgrade: {exc}", file=sys.stderr)
        return 2
    print(f"database schema at revision {revision}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from chain.storage import Ledger
    from node.tokens import TokenStore

    with Ledger.open(db_url(args)) as ledger:
        if args.org not in {o["id"] for o in ledger.genesis["orgs"]}:
            print(f"unknown organisation {args.org}", file=sys.stderr)
            return 2
        print(TokenStore(ledger.engine).create(args.org, args.label))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from node.replay import rebuild_state

    try:
        blocks, entries = rebuild_state(db_url(args), Path(args.data))
    except ChainError as exc:
        print(f"replay failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"replayed {blocks} blocks, {entries} entries: every receipt identical; "
        "state projections rebuilt"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from node.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pfnode", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create a consortium's data directory")
    init.add_argument("--demo", action="store_true", help="the demo consortium")
    init.add_argument(
        "--consortium",
        metavar="DIR",
        help="one data directory per institution under DIR (consortium mode)",
    )
    init.add_argument(
        "--db-pattern",
        help="consortium: database URL per node, {name} being "
        "regulator, bank-a, bank-b or insurer (default: SQLite in each directory)",
    )
    init.add_argument("--data", default=str(DEFAULT_DATA))
    init.add_argument("--db", help="database URL (default: SQLite under --data)")
    init.set_defaults(func=cmd_init)

    serve = sub.add_parser("serve", help="run the node")
    serve.add_argument("--data", default=str(DEFAULT_DATA))
    serve.add_argument("--db", help="database URL (default: SQLite under --data)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="warning")
    serve.add_argument(
        "--role",
        choices=["sequencer", "follower"],
        default="sequencer",
        help="consortium mode: the regulator sequences, the others follow",
    )
    serve.add_argument("--upstream", help="follower: the sequencer's URL")
    serve.add_argument("--org", help="follower: the institution this node serves")
    serve.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="ORG=URL",
        help="sequencer: a witness (follower) to push checkpoints to",
    )
    serve.add_argument(
        "--anchor",
        default="off",
        metavar="off|embedded|RPC_URL",
        help="sequencer: anchor cosigned checkpoints on an EVM chain (embedded: eth-tester "
        "in this process, deployed at start; RPC_URL: with --anchor-contract and --anchor-key)",
    )
    serve.add_argument(
        "--anchor-contract", help="the CheckpointAnchor address (`pfnode anchor deploy`)"
    )
    serve.add_argument(
        "--anchor-key", help="file holding the hex private key that pays for anchors"
    )
    serve.add_argument("--anchor-every-blocks", type=int, default=100)
    serve.add_argument("--anchor-every-seconds", type=float, default=60.0)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (one leads, the others forward)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=20_000,
        help="writes queued before the node answers 503 (backpressure)",
    )
    serve.add_argument(
        "--internal-host",
        default="127.0.0.1",
        help="address the leader listens on for its standbys",
    )
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--data", default=str(DEFAULT_DATA))
    db.add_argument("--db", help="database URL (default: SQLite under --data)")
    db.set_defaults(func=cmd_db)

    token = sub.add_parser("token", help="bearer tokens")
    token.add_argument("action", choices=["create"])
    token.add_argument("--org", required=True)
    token.add_argument("--label", default="")
    token.add_argument("--data", default=str(DEFAULT_DATA))
    token.add_argument("--db", help="database URL")
    token.set_defaults(func=cmd_token)

    replay = sub.add_parser("replay", help="rebuild state from the ledger, comparing receipts")
    replay.add_argument("--data", default=str(DEFAULT_DATA))
    replay.add_argument("--db", help="database URL")
    replay.set_defaults(func=cmd_replay)

    demo = sub.add_parser("demo", help="play the duplicate-financing story over HTTP")
    demo.add_argument("--port", type=int, default=0, help="0: a free port")
    demo.set_defaults(func=cmd_demo)

    verify = sub.add_parser("verify", help="verify a ledger with no trust in the node")
    source = verify.add_mutually_exclusive_group()
    source.add_argument("--db", help="database URL (sqlite:///... or postgresql://...)")
    source.add_argument("--bundle", help="an exported bundle file")
    verify.add_argument("--data", default=str(DEFAULT_DATA), help="data directory (SQLite)")
    verify.add_argument("--no-replay", action="store_true", help="skip replaying receipts")
    verify.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes checking Ed25519 signatures of large blocks",
    )
    verify.add_argument(
        "--audit", metavar="FILE", help="an audit report (JSON) to check against --data's genesis"
    )
    verify.add_argument(
        "--anchored",
        nargs=2,
        metavar=("RPC_URL", "ADDRESS"),
        help="also check the ledger against the checkpoints anchored on an EVM chain",
    )
    verify.set_defaults(func=cmd_verify)

    anchor = sub.add_parser("anchor", help="the checkpoint anchor contract on an EVM chain")
    anchor_sub = anchor.add_subparsers(dest="anchor_command", required=True)
    deploy = anchor_sub.add_parser("deploy", help="deploy it and register genesis's BLS keys")
    deploy.add_argument("--data", default=str(DEFAULT_DATA), help="a data directory (its genesis)")
    deploy.add_argument("--rpc", required=True, help="the chain's JSON-RPC URL")
    deploy.add_argument("--key", required=True, help="file holding the deployer's hex private key")
    deploy.add_argument("--out", help="also write the contract's address to this file")
    deploy.set_defaults(func=cmd_anchor_deploy)

    export = sub.add_parser("export", help="write a self-contained, verifiable bundle")
    export.add_argument("--out", required=True, help="bundle file (.jsonl or .jsonl.gz)")
    export.add_argument("--db", help="database URL")
    export.add_argument("--data", default=str(DEFAULT_DATA), help="data directory (SQLite)")
    export.set_defaults(func=cmd_export)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument(
        "which",
        choices=["ledger", "api", "compare", "replication", "anchor", "alerts", "reliability"],
    )
    bench.add_argument("--repeat", type=int, default=20, help="anchor: checkpoints per figure")
    bench.add_argument("--count", type=int, default=6000, help="compare: drawdowns per run")
    bench.add_argument(
        "--anvil-count",
        type=int,
        default=3000,
        help="compare: drawdowns through the Anvil registry",
    )
    bench.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="compare: a PostgreSQL URL; a fresh database is made beside it",
    )
    bench.add_argument("--save", help="compare: write the output and a PNG plot here")
    bench.add_argument("--seconds", type=float, default=10.0, help="api: load duration")
    bench.add_argument("--rate", type=float, default=3000.0, help="api: bodies per second")
    bench.add_argument("--connections", type=int, default=32, help="api: wrk connections")
    bench.add_argument(
        "--entries",
        type=int,
        default=20_000,
        help="ledger: entries appended; replication: ledger to catch up on "
        "(the issue's figure is 100,000)",
    )
    bench.add_argument("--proof-entries", type=int, default=1_000_000)
    bench.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
