"""Tests for chain.checkpoint: C2SP signed notes, checkpoints and cosignatures."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.checkpoint import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    Verifier,
    add_signatures,
    format_cosigner_key,
    format_verifier_key,
    key_id,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_note,
)
from chain.errors import CheckpointError

# --------------------------------------------------------------------------- fixtures

ORIGIN = "log.example/pfnode"
ROOT = hashlib.sha256(b"pfnode").digest()
TS1 = 1_700_000_000
TS2 = 1_700_000_123


def _key(seed_byte: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed_byte]) * 32)


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


LOG = NoteSigner(ORIGIN, _key(0))
W1 = CosignatureSigner("witness.example/w1", _key(1))
W2 = CosignatureSigner("witness.example/w2", _key(2))
STRANGER = NoteSigner("stranger.example/log", _key(3))
ALL_VERIFIERS = [LOG.verifier, W1.verifier, W2.verifier]

CP = Checkpoint(ORIGIN, 2, ROOT)
TEXT = CP.to_text()
NOTE = sign_note(TEXT, [LOG])
COSIGNED = add_signatures(NOTE, [W1.sign_line(TEXT, TS1), W2.sign_line(TEXT, TS2)])


def _body(size: str = "2", root: str | None = None, origin: str = ORIGIN) -> str:
    root_b64 = base64.b64encode(ROOT).decode() if root is None else root
    return f"{origin}\n{size}\n{root_b64}\n"


def _signed(text: str) -> str:
    """A note over an arbitrary text, signed by LOG (bypasses checkpoint validation)."""
    return text + "\n" + LOG.sign_line(text)


# --------------------------------------------------------------------------- round trips


def test_round_trip_one_signer() -> None:
    assert TEXT + "\n" + LOG.sign_line(TEXT) == NOTE
    checkpoint, opened = open_checkpoint(NOTE, [LOG.verifier], ORIGIN)
    assert checkpoint == CP
    assert opened.text == TEXT
    assert opened.verified == (ORIGIN,)
    assert dict(opened.timestamps) == {}


def test_round_trip_signer_and_two_cosigners() -> None:
    checkpoint, opened = open_checkpoint(COSIGNED, ALL_VERIFIERS, ORIGIN)
    assert checkpoint == CP
    assert opened.verified == (ORIGIN, "witness.example/w1", "witness.example/w2")
    assert dict(opened.timestamps) == {"witness.example/w1": TS1, "witness.example/w2": TS2}
    # The same note built in one call.
    assert sign_note(TEXT, [LOG, W1], timestamp=TS1) == add_signatures(
        NOTE, [W1.sign_line(TEXT, TS1)]
    )


def test_cosigners_alone_can_verify_a_checkpoint() -> None:
    _, opened = open_checkpoint(COSIGNED, [W2.verifier], ORIGIN)
    assert opened.verified == ("witness.example/w2",)
    assert dict(opened.timestamps) == {"witness.example/w2": TS2}


def test_open_accepts_bytes() -> None:
    checkpoint, _ = open_checkpoint(COSIGNED.encode(), ALL_VERIFIERS, ORIGIN)
    assert checkpoint == CP


def test_unknown_key_is_ignored_known_one_verifies() -> None:
    note = add_signatures(NOTE, [STRANGER.sign_line(TEXT)])
    _, opened = open_checkpoint(note, [LOG.verifier], ORIGIN)
    assert opened.verified == (ORIGIN,)
    # A line by an unknown key is ignored even when its signature is garbage.
    garbage = "\u2014 stranger.example/other " + base64.b64encode(bytes(68)).decode() + "\n"
    _, opened = open_checkpoint(add_signatures(NOTE, [garbage]), [LOG.verifier], ORIGIN)
    assert opened.verified == (ORIGIN,)


def test_identical_duplicate_line_is_tolerated() -> None:
    note = NOTE + LOG.sign_line(TEXT)
    assert open_note(note, [LOG.verifier]).verified == (ORIGIN,)


def test_checkpoint_with_extensions_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 0, bytes(32), ("ext one", "— ext two"))
    assert cp.to_text() == f"{ORIGIN}\n0\n{'A' * 43}=\next one\n— ext two\n"
    assert Checkpoint.parse(cp.to_text()) == cp
    note = sign_note(cp.to_text(), [LOG, W1], timestamp=TS1)
    assert open_checkpoint(note, ALL_VERIFIERS, ORIGIN)[0] == cp


def test_note_text_may_contain_blank_lines() -> None:
    text = "first\n\nthird\n\n"
    opened = open_note(sign_note(text, [LOG]), [LOG.verifier])
    assert opened.text == text


def test_verifier_keys_round_trip() -> None:
    pub = _raw(_key(7).public_key())
    for fmt, alg in ((format_verifier_key, ALG_ED25519), (format_cosigner_key, ALG_COSIGNATURE_V1)):
        vkey = fmt("k.example/seven", pub)
        v = parse_verifier_key(vkey)
        assert (v.name, v.algorithm, v.public_key) == ("k.example/seven", alg, pub)
        assert v.vkey == vkey
        assert v.key_id == key_id("k.example/seven", alg, pub)
    assert LOG.verifier == parse_verifier_key(LOG.verifier.vkey)
    assert W1.verifier == parse_verifier_key(W1.verifier.vkey)


def test_cosignature_layout_matches_the_spec() -> None:
    """Decode a cosignature by hand and check it against an independent reading of the spec."""
    line = W1.sign_line(TEXT, TS1)
    name, b64 = line[len("\u2014 ") : -1].split(" ")
    raw = base64.b64decode(b64)
    pub = _raw(_key(1).public_key())
    assert name == "witness.example/w1"
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    assert int.from_bytes(raw[4:12], "big") == TS1
    message = f"cosignature/v1\ntime {TS1}\n{TEXT}".encode()
    Ed25519PublicKey.from_public_bytes(pub).verify(raw[12:], message)  # raises if wrong


# --------------------------------------------------------------------------- known answers

# From golang.org/x/mod/sumdb/note, note_test.go (TestSign, TestOpen) and the package doc.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01"
    "oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# From c2sp.org/signed-note, "Verifier keys" example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX"
    "ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# From transparency-dev/formats, note/note_cosigv1_test.go (TestCoSigV1NewVerifier).
COSIGNER_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
PLUS_IN_KEY_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"


def _go_signer_seed(skey: str) -> tuple[str, str, bytes]:
    private, key, name, kid, material = skey.split("+", 4)
    assert (private, key) == ("PRIVATE", "KEY")
    raw = base64.b64decode(material, validate=True)
    assert raw[0] == ALG_ED25519 and len(raw) == 33
    return name, kid, raw[1:]


def test_go_note_known_answer() -> None:
    """Key id, verifier key, signature line and note match Go's sumdb/note byte for byte."""
    verifier = parse_verifier_key(GO_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.algorithm == ALG_ED25519
    assert verifier.key_id == bytes.fromhex("c74f20a3")

    name, kid, seed = _go_signer_seed(GO_SKEY)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = _raw(private.public_key())
    assert public == verifier.public_key
    assert key_id(name, ALG_ED25519, public).hex() == kid == "c74f20a3"
    assert format_verifier_key(name, public) == GO_VKEY

    signer = NoteSigner(name, private)
    assert signer.sign_line(GO_TEXT) == GO_PETER_SIG
    assert sign_note(GO_TEXT, [signer]) == GO_TEXT + "\n" + GO_PETER_SIG

    opened = open_note(GO_TEXT + "\n" + GO_PETER_SIG, [verifier])
    assert opened.text == GO_TEXT
    assert opened.verified == ("PeterNeumann",)


def test_go_enoch_known_answer() -> None:
    """Go's EnochRoot key is the all-zero seed; our signature over the Go text matches."""
    signer = NoteSigner("EnochRoot", _key(0))
    assert signer.verifier.vkey == GO_ENOCH_VKEY
    assert signer.sign_line(GO_TEXT) == GO_ENOCH_SIG
    note = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    both = [parse_verifier_key(GO_VKEY), parse_verifier_key(GO_ENOCH_VKEY)]
    assert open_note(note, both).verified == ("PeterNeumann", "EnochRoot")
    # Go's TestOpen: with only Peter's key, Enoch's line is an unknown key and is ignored.
    assert open_note(note, both[:1]).verified == ("PeterNeumann",)


def test_spec_example_known_answer() -> None:
    verifier = parse_verifier_key(SPEC_VKEY)
    assert verifier.key_id.hex() == "530d903a"
    assert open_note(SPEC_NOTE, [verifier]).text == "This is an example message.\n"


def test_published_cosigner_and_plus_keys_parse() -> None:
    cosigner = parse_verifier_key(COSIGNER_VKEY)
    assert cosigner.algorithm == ALG_COSIGNATURE_V1
    assert format_cosigner_key(cosigner.name, cosigner.public_key) == COSIGNER_VKEY
    plus = parse_verifier_key(PLUS_IN_KEY_VKEY)
    assert (plus.name, plus.algorithm) == ("TEST", ALG_ED25519)


def test_refuses_every_mangled_go_verifier_key() -> None:
    """Port of Go's TestNewVerifier: every proper substring and every bumped byte is refused."""
    b = GO_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(CheckpointError):
                    parse_verifier_key(b[i:j].decode())
    for i in range(len(b)):
        bumped = b[:i] + bytes([b[i] + 1]) + b[i + 1 :]
        with pytest.raises(CheckpointError):
            parse_verifier_key(bumped.decode())


# --------------------------------------------------------------------------- refused notes


def test_refuses_unknown_keys_only() -> None:
    with pytest.raises(CheckpointError, match="no signature from a known key"):
        open_checkpoint(sign_note(TEXT, [STRANGER]), [LOG.verifier], ORIGIN)
    with pytest.raises(CheckpointError, match="no signature from a known key"):
        open_checkpoint(NOTE, [], ORIGIN)


@pytest.mark.parametrize(
    ("note", "match"),
    [
        (NOTE.replace("\n", "\r\n"), "carriage return"),
        (NOTE.replace("\n", "\r\n", 1), "carriage return"),
        (NOTE.replace("\n\n", "\n\r\n"), "carriage return"),
        (NOTE.replace("\n\n", "\n"), "no blank line"),
        (NOTE[:-1], "does not end with a newline"),
        (TEXT + "\n", "no signature lines"),
        (TEXT, "no blank line"),
        ("", "does not end with a newline"),
        (NOTE.replace("\u2014", "-"), "signature line 1 does not start"),
        (NOTE.replace("\u2014 ", "\u2014"), "signature line 1 does not start"),
        (NOTE + "Unexpected line.\n", "signature line 2 does not start"),
        (NOTE.replace(f"{ORIGIN} ", f"{ORIGIN}+x "), "contains '\\+'"),
        (NOTE.replace(f"\u2014 {ORIGIN} ", f"\u2014 {ORIGIN}"), "not '— <name> <base64>'"),
        (NOTE.replace(f"\u2014 {ORIGIN} ", "\u2014  "), "key name is empty"),
        (NOTE[:-2] + "!\n", "not valid base64"),
        (NOTE[:-1] + " x\n", "not valid base64"),
        (TEXT + "\n\u2014 x AAAA\n", "too short"),
        (NOTE.replace("2\n", "2\x01\n", 1), "control character 0x01"),
        (NOTE.replace("\n\n", "\n\t\n"), "control character 0x09"),
    ],
)
def test_refuses_malformed_note(note: str, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        open_note(note, ALL_VERIFIERS)


def test_refuses_non_canonical_base64_in_signature() -> None:
    b64 = NOTE.split(" ")[-1][:-1]
    assert b64.endswith("=") and len(base64.b64decode(b64)) % 3 == 2
    # 2 leftover bytes -> the last base64 character carries 2 unused bits; set one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = b64[-2]
    mangled = b64[:-2] + alphabet[alphabet.index(last) | 1] + "="
    assert mangled != b64 and base64.b64decode(mangled) == base64.b64decode(b64)
    with pytest.raises(CheckpointError, match="signature line 1.*not canonical base64"):
        open_note(NOTE.replace(b64, mangled), [LOG.verifier])
    with pytest.raises(CheckpointError, match="not valid base64"):
        open_note(NOTE.replace(b64, b64[:-1]), [LOG.verifier])  # missing padding


def test_refuses_invalid_utf8() -> None:
    with pytest.raises(CheckpointError, match="not valid UTF-8"):
        open_note(b"\xff" + NOTE.encode(), [LOG.verifier])
    with pytest.raises(CheckpointError, match="not valid UTF-8"):
        open_note("\ud800" + NOTE, [LOG.verifier])


def test_refuses_note_over_one_mebibyte() -> None:
    text = "x" * (MAX_NOTE_SIZE - 10) + "\n"
    note = text + "\n" + LOG.sign_line(text)
    with pytest.raises(CheckpointError, match="over the 1048576-byte limit"):
        open_note(note, [LOG.verifier])
    with pytest.raises(CheckpointError, match="over the 1048576-byte limit"):
        open_note(note.encode(), [LOG.verifier])
    with pytest.raises(CheckpointError, match="over the 1048576-byte limit"):
        sign_note("x" * MAX_NOTE_SIZE + "\n", [LOG])


def test_refuses_too_many_signature_lines() -> None:
    lines = [NoteSigner(f"s{i}.example", _key(9)).sign_line(TEXT) for i in range(MAX_SIGNATURES)]
    with pytest.raises(CheckpointError, match="101 signature lines"):
        open_note(NOTE + "".join(lines), [LOG.verifier])
    with pytest.raises(CheckpointError, match="101 signature lines"):
        add_signatures(NOTE, lines)


def test_refuses_known_name_with_wrong_key_id() -> None:
    impostor = NoteSigner(ORIGIN, _key(4))
    note = add_signatures(NOTE, [impostor.sign_line(TEXT)])
    with pytest.raises(CheckpointError, match=f"signature line 2: known key name '{ORIGIN}'"):
        open_checkpoint(note, [LOG.verifier], ORIGIN)
    # Also when it is the only line, and for cosigners.
    with pytest.raises(CheckpointError, match="with unknown key id"):
        open_checkpoint(sign_note(TEXT, [impostor]), [LOG.verifier], ORIGIN)
    w1_plain = NoteSigner("witness.example/w1", _key(1))  # right key, wrong signature type
    with pytest.raises(CheckpointError, match="'witness.example/w1' with unknown key id"):
        open_checkpoint(add_signatures(NOTE, [w1_plain.sign_line(TEXT)]), ALL_VERIFIERS, ORIGIN)


def test_refuses_tampered_text() -> None:
    tampered = COSIGNED.replace("\n2\n", "\n3\n", 1)
    with pytest.raises(CheckpointError, match=f"signature line 1: signature by key {ORIGIN}"):
        open_checkpoint(tampered, ALL_VERIFIERS, ORIGIN)
    with pytest.raises(CheckpointError, match="signature line 2: .*witness.example/w1"):
        open_checkpoint(tampered, [W1.verifier], ORIGIN)


def test_refuses_tampered_cosignature_timestamp() -> None:
    line = W1.sign_line(TEXT, TS1)
    raw = bytearray(base64.b64decode(line.split(" ")[-1]))
    raw[11] ^= 0x01  # low byte of the timestamp
    forged = f"\u2014 witness.example/w1 {base64.b64encode(bytes(raw)).decode()}\n"
    note = add_signatures(NOTE, [forged])
    with pytest.raises(CheckpointError, match="signature line 2: .*witness.example/w1.*not verify"):
        open_checkpoint(note, ALL_VERIFIERS, ORIGIN)


def test_refuses_cosignature_timestamp_over_2_63() -> None:
    line = W1.sign_line(TEXT, TS1)
    raw = bytearray(base64.b64decode(line.split(" ")[-1]))
    raw[4] = 0x80
    forged = f"\u2014 witness.example/w1 {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CheckpointError, match="over 2\\^63-1"):
        open_note(NOTE + forged, [W1.verifier])


def test_refuses_wrong_length_signature_from_known_key() -> None:
    kid = LOG.key_id
    short = f"\u2014 {ORIGIN} {base64.b64encode(kid + bytes(63)).decode()}\n"
    with pytest.raises(CheckpointError, match="63 bytes after the key id, want 64"):
        open_note(TEXT + "\n" + short, [LOG.verifier])
    cosig = f"\u2014 witness.example/w1 {base64.b64encode(W1.key_id + bytes(64)).decode()}\n"
    with pytest.raises(CheckpointError, match="64 bytes after the key id, want 72"):
        open_note(NOTE + cosig, ALL_VERIFIERS)


def test_refuses_bad_known_signature_even_if_another_verifies() -> None:
    bad = f"\u2014 witness.example/w2 {base64.b64encode(W2.key_id + bytes(72)).decode()}\n"
    with pytest.raises(CheckpointError, match="signature line 3: .*witness.example/w2"):
        open_checkpoint(NOTE + W1.sign_line(TEXT, TS1) + bad, ALL_VERIFIERS, ORIGIN)


def test_refuses_two_different_signatures_by_one_key() -> None:
    note = NOTE + W1.sign_line(TEXT, TS1) + W1.sign_line(TEXT, TS2)
    with pytest.raises(CheckpointError, match="signature line 3: second, different signature"):
        open_note(note, ALL_VERIFIERS)
    with pytest.raises(CheckpointError, match="already signed the note"):
        add_signatures(add_signatures(NOTE, [W1.sign_line(TEXT, TS1)]), [W1.sign_line(TEXT, TS2)])


def test_refuses_ambiguous_verifiers() -> None:
    # Two different keys that share a name and (by construction here) a key id cannot both be
    # trusted; forge the clash by reusing the dataclass with a different key but equal id.
    class Clash(Verifier):
        @property
        def key_id(self) -> bytes:
            return LOG.key_id

    clash = Clash(ORIGIN, ALG_ED25519, _raw(_key(5).public_key()))
    with pytest.raises(CheckpointError, match="ambiguous verifiers"):
        open_note(NOTE, [LOG.verifier, clash])
    # The same verifier twice is fine.
    assert open_note(NOTE, [LOG.verifier, LOG.verifier]).verified == (ORIGIN,)


# --------------------------------------------------------------------------- refused checkpoints


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f"{ORIGIN}\n", "1 line"),
        (f"{ORIGIN}\n2\n", "2 line"),
        ("\n2\n" + base64.b64encode(ROOT).decode() + "\n", "line 1: origin is empty"),
        (_body(size="02"), "line 2: tree size '02'"),
        (_body(size="00"), "line 2: tree size '00'"),
        (_body(size="+5"), "line 2: tree size '\\+5'"),
        (_body(size="-1"), "line 2: tree size '-1'"),
        (_body(size=" 2"), "line 2: tree size ' 2'"),
        (_body(size=""), "line 2: tree size ''"),
        (_body(size="\u0662"), "line 2: tree size"),  # ARABIC-INDIC DIGIT TWO
        (_body(size=str(2**64)), "line 2: tree size .* over 2\\^64-1"),
        (_body(root=base64.b64encode(ROOT[:31]).decode()), "line 3: root hash is 31 bytes"),
        (_body(root=base64.b64encode(ROOT + b"x").decode()), "line 3: root hash is 33 bytes"),
        (_body(root=base64.b64encode(ROOT).decode()[:-1]), "line 3: root hash is not valid"),
        (_body(root=base64.urlsafe_b64encode(b"\xff" * 32).decode()), "line 3: root hash"),
        (_body() + "\n", "line 4: extension line is empty"),
        (_body() + "ext\n\n", "line 5: extension line is empty"),
    ],
)
def test_refuses_malformed_checkpoint(text: str, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        Checkpoint.parse(text)
    with pytest.raises(CheckpointError, match=match):
        open_checkpoint(_signed(text), [LOG.verifier], ORIGIN)


def test_refuses_non_canonical_root_base64() -> None:
    root_b64 = base64.b64encode(ROOT).decode()
    # 32 bytes -> 43 characters + "="; the last character carries 2 unused bits. Set one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(root_b64[-2])
    bumped = root_b64[:-2] + alphabet[last ^ 1] + "="
    assert base64.b64decode(bumped) == ROOT and bumped != root_b64
    with pytest.raises(CheckpointError, match="line 3: root hash is not canonical base64"):
        open_checkpoint(_signed(_body(root=bumped)), [LOG.verifier], ORIGIN)


def test_refuses_wrong_origin() -> None:
    with pytest.raises(CheckpointError, match="origin 'log.example/pfnode' is not the expected"):
        open_checkpoint(NOTE, [LOG.verifier], "log.example/other")


def test_refuses_bad_checkpoint_fields() -> None:
    with pytest.raises(CheckpointError, match="32 bytes, got 31"):
        Checkpoint(ORIGIN, 1, bytes(31))
    with pytest.raises(CheckpointError, match="non-empty"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError, match="control character"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match="outside"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(CheckpointError, match="must be an int"):
        Checkpoint(ORIGIN, True, ROOT)
    with pytest.raises(CheckpointError, match="line 4: extension line is empty"):
        Checkpoint(ORIGIN, 1, ROOT, ("",))
    with pytest.raises(CheckpointError, match="line 5: extension has a control character"):
        Checkpoint(ORIGIN, 1, ROOT, ("ok", "a\nb"))


# --------------------------------------------------------------------------- refused keys/signing


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\nb", "tab\t"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(CheckpointError):
        NoteSigner(name, _key(1))
    with pytest.raises(CheckpointError):
        format_verifier_key(name, _raw(_key(1).public_key()))


@pytest.mark.parametrize(
    ("vkey", "match"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a3", "not <name>"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX", "does not match"),
        # Go's own bad keys: wrong length and unknown algorithm, each with a matching key id.
        # (Go's wrong-length key is also non-canonical base64, which is caught first.)
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "not canonical base64",
        ),
        # Canonical base64 of 34 bytes, with the key id computed over them.
        ("PeterNeumann+5bdbe860+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==", "want 33"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "signature type"),
    ],
)
def test_refuses_bad_verifier_key(vkey: str, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        parse_verifier_key(vkey)


def test_refuses_bad_signing_input() -> None:
    with pytest.raises(CheckpointError, match="does not end with a newline"):
        sign_note("abc", [LOG])
    with pytest.raises(CheckpointError, match="carriage return"):
        sign_note("abc\r\n", [LOG])
    with pytest.raises(CheckpointError, match="empty"):
        sign_note("", [LOG])
    with pytest.raises(CheckpointError, match="at least one signer"):
        sign_note(TEXT, [])
    with pytest.raises(CheckpointError, match="needs a timestamp"):
        sign_note(TEXT, [LOG, W1])
    with pytest.raises(CheckpointError, match="checkpoint has 1 line"):
        W1.sign_line("not a checkpoint\n", TS1)
    for bad_ts in (-1, 2**63, True):
        with pytest.raises(CheckpointError, match="timestamp"):
            W1.sign_line(TEXT, bad_ts)
    assert open_note(NOTE + W1.sign_line(TEXT, 2**63 - 1), [W1.verifier]).timestamps == {
        "witness.example/w1": 2**63 - 1
    }


def test_refuses_bad_added_lines() -> None:
    line = W1.sign_line(TEXT, TS1)
    with pytest.raises(CheckpointError, match="not one line ending in a newline"):
        add_signatures(NOTE, [line[:-1]])
    with pytest.raises(CheckpointError, match="not one line ending in a newline"):
        add_signatures(NOTE, [line + line])
    with pytest.raises(CheckpointError, match="sequence of signature lines"):
        add_signatures(NOTE, line)
    with pytest.raises(CheckpointError, match="does not start with an em dash"):
        add_signatures(NOTE, ["hello\n"])
    with pytest.raises(CheckpointError, match="no blank line"):
        add_signatures(TEXT, [line])


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_refuses_any_single_byte_change_in_body(data: st.DataObject) -> None:
    note = COSIGNED.encode()
    body_len = len(TEXT.encode())
    i = data.draw(st.integers(0, body_len - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != note[i]), label="byte")
    mutated = note[:i] + bytes([new]) + note[i + 1 :]
    with pytest.raises(CheckpointError):
        open_checkpoint(mutated, ALL_VERIFIERS, ORIGIN)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_refuses_any_single_byte_change_with_one_signer(data: st.DataObject) -> None:
    note = NOTE.encode()
    i = data.draw(st.integers(0, len(note) - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != note[i]), label="byte")
    mutated = note[:i] + bytes([new]) + note[i + 1 :]
    with pytest.raises(CheckpointError):
        open_checkpoint(mutated, [LOG.verifier], ORIGIN)


_line = st.text(
    st.characters(exclude_categories=["Cs"], min_codepoint=0x20), min_size=1, max_size=20
)


@settings(max_examples=200, deadline=None)
@given(
    origin=_line,
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_line, max_size=3).map(tuple),
)
def test_checkpoint_round_trip(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    cp = Checkpoint(origin, size, root, extensions)
    assert Checkpoint.parse(cp.to_text()) == cp
    note = sign_note(cp.to_text(), [LOG, W1], timestamp=TS1)
    assert open_checkpoint(note, ALL_VERIFIERS, origin)[0] == cp
