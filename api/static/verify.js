// Proofs checked in the browser, trusting nothing the node says about them.
//
// RFC 8785 (JCS) canonical JSON, RFC 9162 Merkle hashing with Web Crypto SHA-256
// (leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right)), and the
// inclusion and consistency verifiers ported from transparency-dev/merkle
// proof/verify.go, as chain/merkle.py does. Every verify* function throws a ProofError
// saying what is wrong; it never returns false. Indices and sizes are BigInt inside, so
// the bit arithmetic holds beyond 32 bits.

const HASH_SIZE = 32;
const encoder = new TextEncoder();

export class ProofError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofError";
  }
}

// ---------------------------------------------------------------- encodings

export function hexToBytes(hex) {
  if (typeof hex !== "string" || !/^([0-9a-f]{2})*$/i.test(hex)) {
    throw new ProofError(`not hex: ${String(hex).slice(0, 80)}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function base64ToBytes(text) {
  const raw = atob(text);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// RFC 8785: object keys sorted by UTF-16 code units, no whitespace, strings and
// numbers as ECMAScript's JSON.stringify writes them (which is what JCS specifies).
export function canonicalJson(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new ProofError(`${value} has no JSON form`);
    }
    if (typeof value === "string" && /\p{Surrogate}/u.test(value)) {
      throw new ProofError("a lone surrogate has no canonical form");
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${canonicalJson(k)}:${canonicalJson(value[k])}`).join(",")}}`;
}

// ---------------------------------------------------------------- hashing

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function leafHash(data) {
  const buf = new Uint8Array(data.length + 1);
  buf[0] = 0x00;
  buf.set(data, 1);
  return sha256(buf);
}

export async function nodeHash(left, right) {
  const buf = new Uint8Array(1 + left.length + right.length);
  buf[0] = 0x01;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return sha256(buf);
}

/** The leaf hash of a signed entry {"entry": ..., "sig": ...}: its ledger hash. */
export async function computeEntryHash(signedEntry) {
  return leafHash(encoder.encode(canonicalJson(signedEntry)));
}

// ---------------------------------------------------------------- RFC 9162 verifiers

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n) {
  return [...n.toString(2)].filter((c) => c === "1").length;
}

function trailingZeros(n) {
  return bitLength(n & -n) - 1;
}

function decompInclProof(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  const border = popCount(index >> BigInt(inner));
  return [inner, border];
}

async function chainInner(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    seed = (index >> BigInt(i)) & 1n ? await nodeHash(proof[i], seed) : await nodeHash(seed, proof[i]);
  }
  return seed;
}

async function chainInnerRight(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    if ((index >> BigInt(i)) & 1n) seed = await nodeHash(proof[i], seed);
  }
  return seed;
}

async function chainBorderRight(seed, proof) {
  for (const h of proof) seed = await nodeHash(h, seed);
  return seed;
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw new ProofError(`${what} is ${value?.length ?? "no"} bytes, want ${HASH_SIZE}`);
  }
}

function checkMatch(calculated, expected, what) {
  if (!equalBytes(calculated, expected)) {
    throw new ProofError(
      `${what}: calculated root ${bytesToHex(calculated)} does not match ${bytesToHex(expected)}`,
    );
  }
}

function toBig(n, what) {
  if (typeof n === "bigint") return n;
  if (!Number.isSafeInteger(n)) throw new ProofError(`${what} ${n} is not an integer`);
  return BigInt(n);
}

/** The root an inclusion proof implies for `leaf` at `index` in a tree of `treeSize`. */
export async function computeInclusionRoot(leaf, index, treeSize, proof) {
  const idx = toBig(index, "leaf index");
  const size = toBig(treeSize, "tree size");
  if (size <= 0n) throw new ProofError(`inclusion proof in tree size ${size} (must be > 0)`);
  if (idx < 0n || idx >= size) {
    throw new ProofError(`leaf index ${idx} is out of range for tree size ${size}`);
  }
  checkHash(leaf, "leaf hash");
  proof.forEach((h, i) => checkHash(h, `proof element ${i}`));
  const [inner, border] = decompInclProof(idx, size);
  if (proof.length !== inner + border) {
    throw new ProofError(
      `inclusion proof for leaf ${idx} in tree size ${size} has ${proof.length} elements, want ${inner + border}`,
    );
  }
  const partial = await chainInner(leaf, proof.slice(0, inner), idx);
  return chainBorderRight(partial, proof.slice(inner));
}

export async function verifyInclusion(leaf, index, treeSize, proof, root) {
  checkHash(root, "root");
  const calculated = await computeInclusionRoot(leaf, index, treeSize, proof);
  checkMatch(calculated, root, `inclusion of leaf ${index} in tree size ${treeSize}`);
}

export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const s1 = toBig(size1, "size1");
  const s2 = toBig(size2, "size2");
  if (s1 <= 0n) throw new ProofError(`consistency proof from tree size ${s1} (must be > 0)`);
  if (s2 < s1) throw new ProofError(`consistency proof from tree size ${s1} to smaller size ${s2}`);
  checkHash(root1, `root1 (tree size ${s1})`);
  checkHash(root2, `root2 (tree size ${s2})`);
  proof.forEach((h, i) => checkHash(h, `proof element ${i}`));
  const what = `consistency from tree size ${s1} to ${s2}`;
  if (s1 === s2) {
    if (proof.length) throw new ProofError(`${what}: equal sizes need an empty proof`);
    checkMatch(root1, root2, what);
    return;
  }
  if (!proof.length) throw new ProofError(`${what}: empty proof`);
  let [inner, border] = decompInclProof(s1 - 1n, s2);
  const shift = trailingZeros(s1);
  inner -= shift;
  const [seed, start] = s1 === 1n << BigInt(shift) ? [root1, 0] : [proof[0], 1];
  if (proof.length !== start + inner + border) {
    throw new ProofError(`${what}: proof has ${proof.length} elements, want ${start + inner + border}`);
  }
  const rest = proof.slice(start);
  const mask = (s1 - 1n) >> BigInt(shift);
  const hash1 = await chainBorderRight(await chainInnerRight(seed, rest.slice(0, inner), mask), rest.slice(inner));
  checkMatch(hash1, root1, `${what} (old root)`);
  const hash2 = await chainBorderRight(await chainInner(seed, rest.slice(0, inner), mask), rest.slice(inner));
  checkMatch(hash2, root2, `${what} (new root)`);
}

// ---------------------------------------------------------------- checkpoints (C2SP)

/**
 * A C2SP checkpoint in a signed note: origin, size, root (hex), extension lines, and each
 * signature line's key name (cosignature/v1 lines also carry their timestamp). The
 * signatures themselves are not checked here: the page has no verifier keys.
 */
export function parseCheckpoint(note) {
  const cut = note.indexOf("\n\n");
  if (cut < 0) throw new ProofError("the checkpoint note has no signature block");
  const [origin, sizeText, rootText, ...extensions] = note.slice(0, cut).split("\n");
  if (!/^[1-9][0-9]*$|^0$/.test(sizeText || "")) throw new ProofError(`bad tree size ${sizeText}`);
  const root = base64ToBytes(rootText || "");
  checkHash(root, "checkpoint root");
  const signatures = note
    .slice(cut + 2)
    .split("\n")
    .filter((line) => line.startsWith("— "))
    .map((line) => {
      const [, name, sig] = line.split(" ");
      const raw = base64ToBytes(sig || "");
      let time = null;
      if (raw.length === 4 + 8 + 64) {
        time = Number(new DataView(raw.buffer).getBigUint64(4)); // cosignature/v1 timestamp
      }
      return { name, keyId: bytesToHex(raw.slice(0, 4)), time };
    });
  return { origin, size: Number(sizeText), root: bytesToHex(root), extensions, signatures };
}

// ---------------------------------------------------------------- an entry with its proof

/**
 * Check what GET /v1/ledger/entries/{hash} answered: the entry's bytes hash to its hash,
 * the proof leads from that leaf to the log root, and (when `consistencyTo` can fetch a
 * consistency proof) that root extends, or is extended by, the latest checkpoint.
 * Returns the steps, each {name, ok: true | false | null (not applicable yet), text};
 * `ok` overall is false as soon as one step failed.
 */
export async function checkEntryProof(answer, checkpoint, fetchConsistency) {
  const steps = [];
  const step = async (name, run) => {
    try {
      const { ok = true, text } = await run();
      steps.push({ name, ok, text });
    } catch (err) {
      steps.push({ name, ok: false, text: err instanceof ProofError ? err.message : String(err) });
    }
  };
  const proof = answer.proof || {};
  await step("leaf", async () => {
    const computed = bytesToHex(await computeEntryHash(answer.entry));
    if (computed !== answer.entry_hash) {
      throw new ProofError(`SHA-256(0x00 ‖ JCS(entry)) is ${computed}, not the entry hash ${answer.entry_hash}`);
    }
    return { text: `SHA-256(0x00 ‖ JCS(signed entry)) = ${computed}` };
  });
  await step("inclusion", async () => {
    const hashes = (proof.hashes || []).map(hexToBytes);
    await verifyInclusion(hexToBytes(answer.entry_hash), answer.index, proof.tree_size, hashes, hexToBytes(proof.log_root));
    return {
      text: `root recomputed from ${hashes.length} proof hash(es), leaf ${answer.index} of ${proof.tree_size}: ${proof.log_root}`,
    };
  });
  await step("checkpoint", async () => {
    if (!checkpoint) return { ok: null, text: "no checkpoint published yet" };
    if (answer.index >= checkpoint.size) {
      return { ok: null, text: `entry ${answer.index} is after the latest checkpoint (size ${checkpoint.size}); re-check in a second` };
    }
    const [lo, hi] = checkpoint.size <= proof.tree_size ? [checkpoint, { size: proof.tree_size, root: proof.log_root }] : [{ size: proof.tree_size, root: proof.log_root }, checkpoint];
    const hashes = lo.size === hi.size ? [] : ((await fetchConsistency(lo.size, hi.size)).hashes || []).map(hexToBytes);
    await verifyConsistency(lo.size, hi.size, hexToBytes(lo.root), hexToBytes(hi.root), hashes);
    return { text: `the proof's root (size ${proof.tree_size}) is consistent with the checkpoint of size ${checkpoint.size}, root ${checkpoint.root}` };
  });
  return { ok: steps.every((s) => s.ok !== false), steps };
}
