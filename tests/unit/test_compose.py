"""docker-compose.yml: every pfnode command in it is one the CLI accepts; and `docker compose
config` passes where the compose plugin exists."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from node.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def pfnode_commands() -> list[list[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = []
    for name, service in compose["services"].items():
        outer = shlex.split(service.get("command", ""))
        script = outer[2] if outer[:2] == ["sh", "-c"] else " ".join(outer)
        for part in script.replace("(", " ").replace(")", " ").replace("||", "&&").split("&&"):
            words = shlex.split(part)
            if "pfnode" in words:
                commands.append([name, *words[words.index("pfnode") + 1 :]])
    return commands


def test_compose_runs_a_sequencer_three_followers_and_an_evm_node() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"postgres", "init", "sequencer", "bank-a", "bank-b", "insurer", "anvil"} <= set(
        compose["services"]
    )
    for name in ("sequencer", "bank-a", "bank-b", "insurer", "anvil", "postgres"):
        assert "healthcheck" in compose["services"][name], name


@pytest.mark.parametrize("command", pfnode_commands(), ids=lambda c: c[0])
def test_compose_commands_parse(command: list[str]) -> None:
    args = build_parser().parse_args(command[1:])
    if args.command == "serve" and args.role == "follower":
        assert args.upstream and args.org


def test_docker_compose_config_passes() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker has no compose plugin here")
    out = subprocess.run([docker, "compose", "config", "-q"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
