// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.24;

/// @title LedgerAnchor
/// @author Lunaria
/// @notice Public, append-only record of the Merkle roots of one Lunaria log.
/// @dev Each anchor commits a checkpoint (root hash, tree size) of the log named by `originHash`.
///      Tree sizes strictly increase, so anchors form a timeline that auditors can compare with
///      the log's signed checkpoints and consistency proofs. Nothing here verifies consistency:
///      the chain only timestamps what the owner published; auditors check it off-chain.
contract LedgerAnchor {
    /// @notice One anchored checkpoint.
    /// @dev Two storage slots: the root alone, then treeSize and timestamp packed together.
    struct Anchor {
        bytes32 root;
        uint64 treeSize;
        uint64 timestamp;
    }

    /// @notice SHA-256 of the log's origin string (UTF-8), fixed at deployment.
    bytes32 public immutable originHash;

    /// @notice The only account allowed to anchor: the deployer.
    /// @dev Immutable rather than stored: saves a cold SLOAD on every anchor. A lost or
    ///      compromised key means deploying a new contract, which the log records.
    address public immutable owner;

    // Count and latest size share one slot so an anchor reads and writes a single header slot
    // instead of reading the previous anchor back.
    uint64 private _count;
    uint64 private _latestTreeSize;

    mapping(uint256 index => Anchor) private _anchors;

    /// @notice A checkpoint was anchored.
    /// @param index Position of the anchor, 0-based.
    /// @param root Merkle root hash (RFC 9162) of the log at `treeSize`.
    /// @param treeSize Number of entries committed by `root`.
    event Anchored(uint256 indexed index, bytes32 root, uint64 treeSize);

    /// @notice The caller is not the owner.
    /// @param caller The address that tried to anchor.
    error NotOwner(address caller);

    /// @notice The tree size is not larger than the latest anchored one (0 before the first).
    /// @param previous Latest anchored tree size.
    /// @param given Tree size that was refused.
    error TreeSizeNotIncreasing(uint64 previous, uint64 given);

    /// @notice No anchor exists at this index.
    /// @param index Requested index.
    /// @param count Number of anchors.
    error IndexOutOfRange(uint256 index, uint256 count);

    /// @param originHash_ SHA-256 of the log's origin string.
    constructor(bytes32 originHash_) {
        originHash = originHash_;
        owner = msg.sender;
    }

    /// @notice Record a checkpoint of the log.
    /// @dev The first anchor accepts any size above 0; later ones must exceed the latest.
    /// @param root Merkle root hash of the log at `treeSize`.
    /// @param treeSize Number of entries committed by `root`.
    function anchor(bytes32 root, uint64 treeSize) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        uint64 count = _count;
        uint64 previous = _latestTreeSize;
        if (treeSize <= previous) revert TreeSizeNotIncreasing(previous, treeSize);

        _anchors[count] = Anchor(root, treeSize, uint64(block.timestamp));
        unchecked {
            // Sizes strictly increase and fit in uint64, so the count cannot overflow.
            _count = count + 1;
        }
        _latestTreeSize = treeSize;
        emit Anchored(count, root, treeSize);
    }

    /// @notice Number of anchors recorded.
    function anchorCount() external view returns (uint256) {
        return _count;
    }

    /// @notice The anchor at `index` (0-based, in anchoring order).
    /// @param index Position of the anchor.
    /// @return root Merkle root hash.
    /// @return treeSize Number of entries committed by `root`.
    /// @return timestamp Block timestamp (seconds since the Unix epoch) of the anchoring block.
    function anchorAt(uint256 index)
        external
        view
        returns (bytes32 root, uint64 treeSize, uint64 timestamp)
    {
        if (index >= _count) revert IndexOutOfRange(index, _count);
        Anchor storage a = _anchors[index];
        return (a.root, a.treeSize, a.timestamp);
    }

    /// @notice Tree size of the latest anchor, 0 before the first.
    function latestTreeSize() external view returns (uint64) {
        return _latestTreeSize;
    }
}
