// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title CheckpointAnchor
/// @notice Anchors a pfnode transparency log's checkpoints (size, root) on an EVM chain. A
/// checkpoint is accepted only with a BLS aggregate signature of a quorum of registered
/// validators over `anchorMessage(size, root)`, verified here, on-chain; whoever submits the
/// transaction needs no authority of their own.
///
/// Ciphersuite: BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_ (draft-irtf-cfrg-bls-signature-05,
/// hash-to-curve per RFC 9380): public keys in G1, signatures in G2, the proof-of-possession
/// scheme, exactly what chain/bls.py (py-ecc, blspy) produces. A proof of possession (a
/// signature with the PoP DST over the 48-byte compressed public key) is verified here when a
/// key is registered; that is what makes summing public keys safe against rogue-key attacks.
///
/// Why BLS12-381 through the EIP-2537 precompiles (Prague) and not BN254 (EIP-196/197):
/// the IETF ciphersuite, py-ecc, blspy/blst and Ethereum's consensus-layer keys are all
/// BLS12-381, so the validators' keys and signatures are checked here unchanged; BN254 has no
/// standard hash-to-curve suite (every BN254 verifier invents its own) and offers only about
/// 100-bit security since the exTNFS attacks, against about 120 bits for BLS12-381.
///
/// Precompiles (EIP-2537 final; addresses and prices as py-evm's PragueVM and revm have them):
///   0x0b G1ADD 375 gas, 0x0c G1MSM 12000 gas for one pair (subgroup-checks its input),
///   0x0d G2ADD 600, 0x0f PAIRING_CHECK 32600 * k + 37700, 0x11 MAP_FP2_TO_G2 23800 (includes
///   cofactor clearing); plus 0x02 SHA-256 (expand_message_xmd) and 0x05 MODEXP (reducing the
///   64-byte field elements mod p). Encodings: Fp = 64 bytes (16 zero bytes, 48 big-endian);
///   G1 = x || y (128 bytes); G2 = x.c0 || x.c1 || y.c0 || y.c1 (256 bytes); infinity = zeros.
///
/// Gas measured (solc 0.8.37, optimizer 200 runs; receipts' gasUsed, 21k intrinsic included):
///                                 py-evm 0.12 Prague (eth-tester)  Anvil 1.7.1 (default: Bpo1)
///   deploy                                  1,636,980                     1,636,980
///   registerValidator                         354,214 - 357,048             355,414 - 358,248
///   anchor, 2 signers, first anchor           286,914                       288,114
///   anchor, 4 signers                         274,480                       275,680
///   anchor, 2 signers, later anchor           252,738                       253,938
/// Of an anchor: hashToG2 about 65k (MAP_FP2_TO_G2 47.6k), the pairing check 102,900, and per
/// signer about 10.9k (four cold SLOADs and a G1ADD). A first anchor also pays for fresh
/// storage slots. Anvil is 1,200 gas dearer: post-Osaka MODEXP costs at least 500 (EIP-7883),
/// not 200, and hashToG2 calls it four times.
///
/// Roles: 0 Regulator, 1 Bank, 2 Insurer. A quorum is a set of registered, unrevoked validators
/// that includes a Regulator-role key and covers at least `minRoles` distinct roles.
contract CheckpointAnchor {
    // ---------------------------------------------------------------- constants

    uint8 private constant ROLE_REGULATOR = 0;
    uint8 private constant ROLE_INSURER = 2;
    uint256 private constant MAX_VALIDATORS = 256;

    bytes16 private constant ANCHOR_DOMAIN = "pfnode/anchor/v1";
    bytes private constant SIGNATURE_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    bytes private constant POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    address private constant MODEXP = address(0x05);
    address private constant G1ADD = address(0x0b);
    address private constant G1MSM = address(0x0c);
    address private constant G2ADD = address(0x0d);
    address private constant PAIRING_CHECK = address(0x0f);
    address private constant MAP_FP2_TO_G2 = address(0x11);

    /// The base field modulus p as a 64-byte EIP-2537 field element (two words).
    bytes32 private constant P_HI = 0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7;
    bytes32 private constant P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    /// (p - 1) / 2 as its top 16 and low 32 bytes: y > this sets the compressed sign flag.
    uint128 private constant HALF_P_HI = 0x0d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant HALF_P_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;
    /// The low 381 bits of a compressed key's first 16 bytes (the top 3 bits are flags).
    bytes16 private constant X_MASK = 0x1fffffffffffffffffffffffffffffff;

    /// -G1 (the negated generator), EIP-2537 encoded; contracts/eip2537.py derives it from py-ecc.
    bytes private constant NEG_G1_GENERATOR =
        hex"0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f267816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca";

    // ---------------------------------------------------------------- state

    /// @notice The log this contract anchors (its genesis hash), part of every signed message.
    bytes32 public immutable logId;
    /// @notice The deployer: the only account that registers and revokes validators.
    address public immutable regulator;
    /// @notice Distinct roles (1..3) an anchor's signers must cover, one of them Regulator.
    uint8 public immutable minRoles;

    /// A validator; its G1 key is kept as x = xHi || xLo and y = yHi || yLo (48 bytes each).
    struct Validator {
        bytes16 xHi;
        bytes16 yHi;
        bytes32 xLo;
        bytes32 yLo;
        uint8 role;
        bool revoked;
        string name;
    }

    Validator[] private _validators;
    /// keccak256(128-byte key) => index + 1 (0: never registered). Revoked keys stay here.
    mapping(bytes32 => uint256) private _indexPlusOne;

    /// @notice The root anchored for each checkpoint size (zero: never anchored).
    mapping(uint64 => bytes32) public rootAt;
    uint64 private _latestSize;
    /// @notice How many checkpoints have been anchored.
    uint64 public anchorCount;
    bytes32 private _latestRoot;

    // ---------------------------------------------------------------- events and errors

    event ValidatorRegistered(uint256 indexed index, string name, uint8 role, bytes pubkey);
    event ValidatorRevoked(uint256 indexed index);
    event Anchored(uint64 indexed size, bytes32 root, uint256 signers, uint256 index);

    error InvalidMinRoles(uint8 minRoles);
    error NotRegulator(address caller);
    error InvalidRole(uint8 role);
    error TooManyValidators();
    /// Not a 128-byte G1 point in the prime-order subgroup, or the point at infinity.
    error InvalidPublicKey();
    error DuplicateValidator(uint256 index);
    /// The 48-byte compressed key is not the ZCash-format compression of the 128-byte point.
    error CompressedKeyMismatch();
    error InvalidProofOfPossession();
    error UnknownValidator(uint256 index);
    error AlreadyRevoked(uint256 index);
    error NoSigners();
    /// Bit `index` of the signer bitmap is not a registered, unrevoked validator.
    error UnknownSigner(uint256 index);
    /// The signers' roles (bit r set: role r signed) are not a quorum.
    error NoQuorum(uint8 rolesMask);
    error ZeroSize();
    error AlreadyAnchored(uint64 size, bytes32 root);
    error Fork(uint64 size, bytes32 anchoredRoot, bytes32 root);
    error Rollback(uint64 size, uint64 latestSize);
    error BadSignature();
    /// A precompile that must succeed on valid input did not (a chain without EIP-2537?).
    error PrecompileFailed(address precompile);

    constructor(bytes32 logId_, uint8 minRoles_) {
        if (minRoles_ == 0 || minRoles_ > 3) revert InvalidMinRoles(minRoles_);
        logId = logId_;
        regulator = msg.sender;
        minRoles = minRoles_;
    }

    // ---------------------------------------------------------------- validators

    /// @notice Register a validator key (regulator account only). `pubkey` is the key as an
    /// EIP-2537 G1 point, `pubkeyCompressed` the same key as 48 bytes (what the validator signs
    /// its proof of possession over) and `pop` that proof as an EIP-2537 G2 point.
    function registerValidator(
        string calldata name,
        uint8 role,
        bytes calldata pubkey,
        bytes calldata pubkeyCompressed,
        bytes calldata pop
    ) external returns (uint256 index) {
        if (msg.sender != regulator) revert NotRegulator(msg.sender);
        if (role > ROLE_INSURER) revert InvalidRole(role);
        index = _validators.length;
        if (index >= MAX_VALIDATORS) revert TooManyValidators();
        if (!_isValidPublicKey(pubkey)) revert InvalidPublicKey();
        bytes32 keyHash = keccak256(pubkey);
        uint256 existing = _indexPlusOne[keyHash];
        if (existing != 0) revert DuplicateValidator(existing - 1);
        if (!_isCompressionOf(pubkeyCompressed, pubkey)) revert CompressedKeyMismatch();
        if (pop.length != 256) revert InvalidProofOfPossession();
        if (!_pairingCheck(pubkey, _hashToG2(pubkeyCompressed, POP_DST), pop)) {
            revert InvalidProofOfPossession();
        }

        Validator storage v = _validators.push();
        v.xHi = bytes16(pubkey[16:32]);
        v.xLo = bytes32(pubkey[32:64]);
        v.yHi = bytes16(pubkey[80:96]);
        v.yLo = bytes32(pubkey[96:128]);
        v.role = role;
        v.name = name;
        _indexPlusOne[keyHash] = index + 1;
        emit ValidatorRegistered(index, name, role, pubkey);
    }

    /// @notice Revoke a validator (regulator account only): its bit no longer counts in an
    /// anchor, and its key cannot be registered again.
    function revokeValidator(uint256 index) external {
        if (msg.sender != regulator) revert NotRegulator(msg.sender);
        if (index >= _validators.length) revert UnknownValidator(index);
        Validator storage v = _validators[index];
        if (v.revoked) revert AlreadyRevoked(index);
        v.revoked = true;
        emit ValidatorRevoked(index);
    }

    /// @notice How many validators were ever registered (revoked ones included).
    function validatorCount() external view returns (uint256) {
        return _validators.length;
    }

    /// @notice Validator `index`: its name, role, 128-byte EIP-2537 G1 key and whether revoked.
    function validator(uint256 index)
        external
        view
        returns (string memory name, uint8 role, bytes memory pubkey, bool revoked)
    {
        if (index >= _validators.length) revert UnknownValidator(index);
        Validator storage v = _validators[index];
        return (v.name, v.role, _publicKey(v), v.revoked);
    }

    // ---------------------------------------------------------------- anchoring

    /// @notice Anchor checkpoint (size, root). `signers` has bit i set for each validator i
    /// whose signature over `anchorMessage(size, root)` is aggregated in `aggregateSignature`
    /// (an EIP-2537 G2 point). Anyone may submit: the signature is the authority.
    function anchor(uint64 size, bytes32 root, uint256 signers, bytes calldata aggregateSignature)
        external
    {
        if (signers == 0) revert NoSigners();
        uint256 rolesMask = _rolesOf(signers);
        if (rolesMask & (1 << ROLE_REGULATOR) == 0 || _countBits(rolesMask) < minRoles) {
            revert NoQuorum(uint8(rolesMask));
        }
        if (size == 0) revert ZeroSize();
        uint64 latestSize = _latestSize;
        if (size <= latestSize) {
            if (size < latestSize) revert Rollback(size, latestSize);
            bytes32 anchoredRoot = _latestRoot;
            if (root == anchoredRoot) revert AlreadyAnchored(size, root);
            revert Fork(size, anchoredRoot, root);
        }
        if (aggregateSignature.length != 256) revert BadSignature();
        bytes memory aggregateKey = _aggregateKeys(signers);
        if (_isZero(aggregateKey)) revert BadSignature();
        bytes memory h = _hashToG2(anchorMessage(size, root), SIGNATURE_DST);
        if (!_pairingCheck(aggregateKey, h, aggregateSignature)) revert BadSignature();

        rootAt[size] = root;
        _latestSize = size;
        _latestRoot = root;
        uint256 index = anchorCount;
        anchorCount = uint64(index + 1);
        emit Anchored(size, root, signers, index);
    }

    /// @notice The latest anchored checkpoint ((0, 0) before the first).
    function latest() external view returns (uint64 size, bytes32 root) {
        return (_latestSize, _latestRoot);
    }

    /// @notice The 88 bytes validators sign for checkpoint (size, root) of this log:
    /// "pfnode/anchor/v1" || logId || size (8 bytes, big-endian) || root.
    function anchorMessage(uint64 size, bytes32 root) public view returns (bytes memory) {
        return abi.encodePacked(ANCHOR_DOMAIN, logId, size, root);
    }

    /// @notice hash_to_curve(message) in G2 with the signature DST (RFC 9380,
    /// BLS12381G2_XMD:SHA-256_SSWU_RO_), as a 256-byte EIP-2537 G2 point.
    function hashToG2(bytes calldata message) external view returns (bytes memory) {
        return _hashToG2(message, SIGNATURE_DST);
    }

    // ---------------------------------------------------------------- internals

    /// The roles mask of `signers`; reverts UnknownSigner on a bit that is no live validator.
    function _rolesOf(uint256 signers) private view returns (uint256 rolesMask) {
        uint256 count = _validators.length;
        uint256 bits = signers;
        for (uint256 i = 0; bits != 0; ++i) {
            if (bits & 1 != 0) {
                if (i >= count) revert UnknownSigner(i);
                Validator storage v = _validators[i];
                if (v.revoked) revert UnknownSigner(i);
                rolesMask |= 1 << v.role;
            }
            bits >>= 1;
        }
    }

    /// The sum (G1ADD) of the public keys of the validators in `signers` (all checked live).
    function _aggregateKeys(uint256 signers) private view returns (bytes memory sum) {
        uint256 bits = signers;
        for (uint256 i = 0; bits != 0; ++i) {
            if (bits & 1 != 0) {
                bytes memory key = _publicKey(_validators[i]);
                sum = sum.length == 0 ? key : _precompile(G1ADD, bytes.concat(sum, key), 128);
            }
            bits >>= 1;
        }
    }

    function _countBits(uint256 mask) private pure returns (uint256) {
        return (mask & 1) + ((mask >> 1) & 1) + ((mask >> 2) & 1);
    }

    function _publicKey(Validator storage v) private view returns (bytes memory) {
        return abi.encodePacked(bytes16(0), v.xHi, v.xLo, bytes16(0), v.yHi, v.yLo);
    }

    /// A 128-byte G1 point, not infinity, on the curve and in the subgroup (G1MSM by 1 checks
    /// the encoding, the curve equation and the subgroup, and fails on any of them).
    function _isValidPublicKey(bytes calldata pubkey) private view returns (bool) {
        if (pubkey.length != 128 || _isZero(pubkey)) return false;
        (bool ok,) = _staticcall(G1MSM, bytes.concat(pubkey, bytes32(uint256(1))), 128);
        return ok;
    }

    /// Whether `compressed` is the ZCash-format compression of `pubkey` (a valid G1 point that
    /// is not infinity): flags 0b100 (compressed, finite, y <= (p-1)/2) or 0b101 (y larger),
    /// then the 381 bits of x.
    function _isCompressionOf(bytes calldata compressed, bytes calldata pubkey)
        private
        pure
        returns (bool)
    {
        if (compressed.length != 48) return false;
        bytes16 cHi = bytes16(compressed[0:16]);
        uint128 yHi = uint128(bytes16(pubkey[80:96]));
        uint256 yLo = uint256(bytes32(pubkey[96:128]));
        bool yLarge = yHi > HALF_P_HI || (yHi == HALF_P_HI && yLo > HALF_P_LO);
        uint8 flags = uint8(cHi[0]) & 0xe0;
        return flags == (yLarge ? 0xa0 : 0x80) && (cHi & X_MASK) == bytes16(pubkey[16:32])
            && bytes32(compressed[16:48]) == bytes32(pubkey[32:64]);
    }

    function _isZero(bytes memory data) private pure returns (bool) {
        return keccak256(data) == keccak256(new bytes(data.length));
    }

    /// e(key, h) * e(-G1, signature) == 1, i.e. e(key, h) == e(G1, signature). False when the
    /// precompile refuses an input (not on the curve, not in the subgroup, bad encoding).
    function _pairingCheck(bytes memory key, bytes memory h, bytes memory signature)
        private
        view
        returns (bool)
    {
        (bool ok, bytes memory out) =
            _staticcall(PAIRING_CHECK, bytes.concat(key, h, NEG_G1_GENERATOR, signature), 32);
        return ok && uint256(bytes32(out)) == 1;
    }

    /// hash_to_curve (RFC 9380) to G2: u0, u1 = hash_to_field(message, 2); the map
    /// precompile is map_to_curve followed by clear_cofactor, which is additive, so
    /// MAP(u0) + MAP(u1) = clear_cofactor(map_to_curve(u0) + map_to_curve(u1)).
    function _hashToG2(bytes memory message, bytes memory dst) private view returns (bytes memory) {
        bytes memory uniform = _expandMessageXmd(message, dst);
        bytes memory q0 = _precompile(
            MAP_FP2_TO_G2, bytes.concat(_reduceModP(uniform, 0), _reduceModP(uniform, 64)), 256
        );
        bytes memory q1 = _precompile(
            MAP_FP2_TO_G2, bytes.concat(_reduceModP(uniform, 128), _reduceModP(uniform, 192)), 256
        );
        return _precompile(G2ADD, bytes.concat(q0, q1), 256);
    }

    /// expand_message_xmd with SHA-256 and len_in_bytes = 256 (ell = 8), RFC 9380 section 5.3.1.
    function _expandMessageXmd(bytes memory message, bytes memory dst)
        private
        pure
        returns (bytes memory uniform)
    {
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        // msg_prime = Z_pad (64 zero bytes) || msg || I2OSP(256, 2) || I2OSP(0, 1) || DST_prime
        bytes32 b0 = sha256(
            abi.encodePacked(bytes32(0), bytes32(0), message, uint16(256), uint8(0), dstPrime)
        );
        bytes32 bi = sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        uniform = new bytes(256);
        assembly ("memory-safe") {
            mstore(add(uniform, 0x20), bi)
        }
        for (uint256 i = 2; i <= 8; ++i) {
            bi = sha256(abi.encodePacked(b0 ^ bi, uint8(i), dstPrime));
            assembly ("memory-safe") {
                mstore(add(uniform, mul(i, 0x20)), bi)
            }
        }
    }

    /// The 64 bytes of `uniform` at `offset`, read as a big-endian integer, mod p: a 64-byte
    /// EIP-2537 field element (MODEXP with exponent 1).
    function _reduceModP(bytes memory uniform, uint256 offset) private view returns (bytes memory) {
        bytes32 hi;
        bytes32 lo;
        assembly ("memory-safe") {
            hi := mload(add(add(uniform, 0x20), offset))
            lo := mload(add(add(uniform, 0x40), offset))
        }
        return _precompile(
            MODEXP,
            abi.encodePacked(uint256(64), uint256(1), uint256(64), hi, lo, uint8(1), P_HI, P_LO),
            64
        );
    }

    /// A precompile call that cannot fail on this contract's inputs; reverts PrecompileFailed.
    function _precompile(address precompile, bytes memory input, uint256 outLength)
        private
        view
        returns (bytes memory output)
    {
        bool ok;
        (ok, output) = _staticcall(precompile, input, outLength);
        if (!ok) revert PrecompileFailed(precompile);
    }

    /// staticcall `precompile`; ok only when it succeeded and returned exactly `outLength` bytes
    /// (a chain without the precompile returns nothing).
    function _staticcall(address precompile, bytes memory input, uint256 outLength)
        private
        view
        returns (bool ok, bytes memory output)
    {
        output = new bytes(outLength);
        assembly ("memory-safe") {
            ok := staticcall(
                gas(), precompile, add(input, 0x20), mload(input), add(output, 0x20), outLength
            )
            ok := and(ok, eq(returndatasize(), outLength))
        }
    }
}
