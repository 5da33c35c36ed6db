// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAdapterRegistry} from "./interfaces/IAdapterRegistry.sol";

/// @title AdapterRegistry
/// @notice Listings of LoRA adapters: (registrant, content hash) with a fixed attribution, contributors and weights
/// in basis points summing to 10000. The registrant may change the uri or retire the listing; retirement stops new
/// use only: the escrow keeps settling vouchers signed for a retired listing.
contract AdapterRegistry is IAdapterRegistry {
    /// @notice Weights are in basis points of this total.
    uint16 public constant TOTAL_BPS = 10_000;
    /// @notice Upper bound on contributors per listing.
    uint256 public constant MAX_CONTRIBUTORS = 64;

    mapping(bytes32 listingId => Listing) private _listings;
    mapping(bytes32 listingId => address[]) private _contributors;
    mapping(bytes32 listingId => uint16[]) private _weights;
    mapping(bytes32 listingId => mapping(address contributor => uint16)) private _weightOf;

    modifier onlyRegistrant(bytes32 listingId) {
        Listing storage l = _listings[listingId];
        if (l.registrant == address(0)) revert UnknownListing(listingId);
        if (l.registrant != msg.sender) revert NotRegistrant(listingId, msg.sender);
        if (l.retired) revert ListingIsRetired(listingId);
        _;
    }

    /// @inheritdoc IAdapterRegistry
    function register(
        bytes32 contentHash,
        bytes32 baseModelId,
        uint16 rank,
        uint64 size,
        string calldata uri,
        address[] calldata contributors,
        uint16[] calldata weightsBps
    ) external returns (bytes32 listingId) {
        if (contentHash == bytes32(0)) revert InvalidContentHash();
        if (rank == 0) revert InvalidRank();
        if (size == 0) revert InvalidSize();
        listingId = _listingIdOf(msg.sender, contentHash);
        if (_listings[listingId].registrant != address(0)) revert ListingExists(listingId);
        _setAttribution(listingId, contributors, weightsBps);
        _listings[listingId] = Listing({
            registrant: msg.sender,
            rank: rank,
            retired: false,
            registeredAt: uint64(block.timestamp),
            contentHash: contentHash,
            baseModelId: baseModelId,
            size: size,
            retiredAt: 0,
            uri: uri
        });
        emit ListingRegistered(listingId, msg.sender, contentHash, baseModelId, rank, size, uri);
    }

    /// @inheritdoc IAdapterRegistry
    function listingIdOf(address registrant, bytes32 contentHash) external pure returns (bytes32) {
        return _listingIdOf(registrant, contentHash);
    }

    /// @inheritdoc IAdapterRegistry
    function listing(bytes32 listingId) external view returns (Listing memory) {
        return _listings[listingId];
    }

    /// @inheritdoc IAdapterRegistry
    function contributorsOf(bytes32 listingId)
        external
        view
        returns (address[] memory contributors, uint16[] memory weightsBps)
    {
        return (_contributors[listingId], _weights[listingId]);
    }

    /// @inheritdoc IAdapterRegistry
    function weightOf(bytes32 listingId, address contributor) external view returns (uint16) {
        return _weightOf[listingId][contributor];
    }

    /// @inheritdoc IAdapterRegistry
    function isRegistered(bytes32 listingId) external view returns (bool) {
        return _listings[listingId].registrant != address(0);
    }

    /// @inheritdoc IAdapterRegistry
    function isLive(bytes32 listingId) external view returns (bool) {
        Listing storage l = _listings[listingId];
        return l.registrant != address(0) && !l.retired;
    }

    /// @inheritdoc IAdapterRegistry
    function setUri(bytes32 listingId, string calldata uri) external onlyRegistrant(listingId) {
        _listings[listingId].uri = uri;
        emit ListingUriSet(listingId, uri);
    }

    /// @inheritdoc IAdapterRegistry
    function retire(bytes32 listingId) external onlyRegistrant(listingId) {
        Listing storage l = _listings[listingId];
        l.retired = true;
        l.retiredAt = uint64(block.timestamp);
        emit ListingRetired(listingId, l.contentHash);
    }

    /// @dev Checks and stores a listing's attribution: 1..64 distinct non-zero contributors, non-zero weights
    /// summing to 10000.
    function _setAttribution(bytes32 listingId, address[] calldata contributors, uint16[] calldata weightsBps)
        private
    {
        uint256 count = contributors.length;
        if (count == 0) revert NoContributors();
        if (count > MAX_CONTRIBUTORS) revert TooManyContributors(count, MAX_CONTRIBUTORS);
        if (weightsBps.length != count) revert LengthMismatch();
        mapping(address => uint16) storage weightOf_ = _weightOf[listingId];
        uint256 sum;
        for (uint256 i; i < count; ++i) {
            address c = contributors[i];
            uint16 w = weightsBps[i];
            if (c == address(0)) revert ZeroContributor();
            if (w == 0) revert ZeroWeight(c);
            if (weightOf_[c] != 0) revert DuplicateContributor(c);
            weightOf_[c] = w;
            sum += w;
        }
        if (sum != TOTAL_BPS) revert WeightsNotFull(sum);
        _contributors[listingId] = contributors;
        _weights[listingId] = weightsBps;
        emit ListingAttribution(listingId, contributors, weightsBps);
    }

    function _listingIdOf(address registrant, bytes32 contentHash) private pure returns (bytes32) {
        return keccak256(abi.encode(registrant, contentHash));
    }
}
