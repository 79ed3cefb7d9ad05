// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title DuplicateRegistry
/// @notice The minimal on-chain duplicate check a bank might deploy instead of pfnode: the first
/// account to register a receivable's fingerprint owns it, and any later registration reverts.
contract DuplicateRegistry {
    /// @notice Who registered each fingerprint first (zero address: never registered).
    mapping(bytes32 => address) public ownerOf;

    /// @notice A fingerprint was registered for the first time.
    event Registered(bytes32 indexed fingerprint, address indexed owner);

    /// @notice The fingerprint is already held by `owner`.
    error AlreadyRegistered(bytes32 fingerprint, address owner);

    /// @notice Claim `fingerprint` for the caller; reverts if anyone holds it already.
    function register(bytes32 fingerprint) external {
        address owner = ownerOf[fingerprint];
        if (owner != address(0)) {
            revert AlreadyRegistered(fingerprint, owner);
        }
        ownerOf[fingerprint] = msg.sender;
        emit Registered(fingerprint, msg.sender);
    }
}
