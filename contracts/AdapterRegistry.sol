// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAdapterRegistry} from "./interfaces/IAdapterRegistry.sol";

/// @title AdapterRegistry
/// @notice LoRA adapters keyed by the sha256 of their weights, each with a fixed attribution: contributors and
/// weights in basis points summing to 10000. The owner (registrant) may change the URI or retire the adapter.
contract AdapterRegistry is IAdapterRegistry {
    /// @notice Weights are in basis points of this total.
    uint16 public constant TOTAL_BPS = 10_000;
    /// @notice Upper bound on contributors per adapter.
    uint256 public constant MAX_CONTRIBUTORS = 64;

    mapping(bytes32 adapterId => Adapter) private _adapters;
    mapping(bytes32 adapterId => address[]) private _contributors;
    mapping(bytes32 adapterId => uint16[]) private _weights;
    mapping(bytes32 adapterId => mapping(address contributor => uint16)) private _weightOf;

    modifier onlyAdapterOwner(bytes32 adapterId) {
        Adapter storage a = _adapters[adapterId];
        if (a.owner == address(0)) revert UnknownAdapter(adapterId);
        if (a.owner != msg.sender) revert NotAdapterOwner(adapterId, msg.sender);
        if (a.retired) revert AdapterIsRetired(adapterId);
        _;
    }

    /// @inheritdoc IAdapterRegistry
    function register(
        bytes32 adapterId,
        bytes32 baseModelId,
        uint16 rank,
        string calldata uri,
        address[] calldata contributors,
        uint16[] calldata weightsBps
    ) external {
        if (adapterId == bytes32(0)) revert InvalidAdapterId();
        if (_adapters[adapterId].owner != address(0)) revert AdapterExists(adapterId);
        if (rank == 0) revert InvalidRank();
        uint256 count = contributors.length;
        if (count == 0) revert NoContributors();
        if (count > MAX_CONTRIBUTORS) revert TooManyContributors(count, MAX_CONTRIBUTORS);
        if (weightsBps.length != count) revert LengthMismatch();

        mapping(address => uint16) storage weightOf_ = _weightOf[adapterId];
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

        _adapters[adapterId] = Adapter({
            owner: msg.sender,
            rank: rank,
            retired: false,
            registeredAt: uint64(block.timestamp),
            baseModelId: baseModelId,
            uri: uri
        });
        _contributors[adapterId] = contributors;
        _weights[adapterId] = weightsBps;
        emit AdapterRegistered(adapterId, msg.sender, baseModelId, rank, uri, contributors, weightsBps);
    }

    /// @inheritdoc IAdapterRegistry
    function adapter(bytes32 adapterId) external view returns (Adapter memory) {
        return _adapters[adapterId];
    }

    /// @inheritdoc IAdapterRegistry
    function contributorsOf(bytes32 adapterId)
        external
        view
        returns (address[] memory contributors, uint16[] memory weightsBps)
    {
        return (_contributors[adapterId], _weights[adapterId]);
    }

    /// @inheritdoc IAdapterRegistry
    function weightOf(bytes32 adapterId, address contributor) external view returns (uint16) {
        return _weightOf[adapterId][contributor];
    }

    /// @inheritdoc IAdapterRegistry
    function isLive(bytes32 adapterId) external view returns (bool) {
        Adapter storage a = _adapters[adapterId];
        return a.owner != address(0) && !a.retired;
    }

    /// @inheritdoc IAdapterRegistry
    function setUri(bytes32 adapterId, string calldata uri) external onlyAdapterOwner(adapterId) {
        _adapters[adapterId].uri = uri;
        emit AdapterUriSet(adapterId, uri);
    }

    /// @inheritdoc IAdapterRegistry
    function retire(bytes32 adapterId) external onlyAdapterOwner(adapterId) {
        _adapters[adapterId].retired = true;
        emit AdapterRetired(adapterId);
    }
}
