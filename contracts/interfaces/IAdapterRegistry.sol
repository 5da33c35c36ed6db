// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAdapterRegistry
/// @notice Registry of LoRA adapters and their fixed attribution (contributors and weights in basis points).
interface IAdapterRegistry {
    /// @notice One adapter. The first slot packs owner, rank, retired and registeredAt.
    struct Adapter {
        address owner;
        uint16 rank;
        bool retired;
        uint64 registeredAt;
        bytes32 baseModelId;
        string uri;
    }

    error InvalidAdapterId();
    error AdapterExists(bytes32 adapterId);
    error UnknownAdapter(bytes32 adapterId);
    error AdapterIsRetired(bytes32 adapterId);
    error NotAdapterOwner(bytes32 adapterId, address caller);
    error InvalidRank();
    error NoContributors();
    error TooManyContributors(uint256 count, uint256 max);
    error LengthMismatch();
    error ZeroContributor();
    error ZeroWeight(address contributor);
    error DuplicateContributor(address contributor);
    error WeightsNotFull(uint256 sum);

    event AdapterRegistered(
        bytes32 indexed adapterId,
        address indexed owner,
        bytes32 indexed baseModelId,
        uint16 rank,
        string uri,
        address[] contributors,
        uint16[] weightsBps
    );
    event AdapterUriSet(bytes32 indexed adapterId, string uri);
    event AdapterRetired(bytes32 indexed adapterId);

    /// @notice Register an adapter; the caller becomes its owner. The attribution is fixed forever.
    /// @param adapterId sha256 of the adapter weights; non-zero and not taken.
    /// @param baseModelId Identifier of the base model the adapter applies to.
    /// @param rank LoRA rank, non-zero.
    /// @param uri Where to fetch the weights.
    /// @param contributors 1..MAX_CONTRIBUTORS distinct non-zero addresses.
    /// @param weightsBps Non-zero weights, one per contributor, summing to 10000.
    function register(
        bytes32 adapterId,
        bytes32 baseModelId,
        uint16 rank,
        string calldata uri,
        address[] calldata contributors,
        uint16[] calldata weightsBps
    ) external;

    /// @notice The adapter record (owner zero when unknown).
    /// @param adapterId The adapter id.
    /// @return The record.
    function adapter(bytes32 adapterId) external view returns (Adapter memory);

    /// @notice The attribution of an adapter.
    /// @param adapterId The adapter id.
    /// @return contributors The contributor addresses.
    /// @return weightsBps Their weights in basis points, same order.
    function contributorsOf(bytes32 adapterId)
        external
        view
        returns (address[] memory contributors, uint16[] memory weightsBps);

    /// @notice The weight of `contributor` in `adapterId` (0 when not a contributor).
    /// @param adapterId The adapter id.
    /// @param contributor The contributor address.
    /// @return The weight in basis points.
    function weightOf(bytes32 adapterId, address contributor) external view returns (uint16);

    /// @notice Whether the adapter exists and is not retired (what the escrow checks before paying).
    /// @param adapterId The adapter id.
    /// @return True when registered and live.
    function isLive(bytes32 adapterId) external view returns (bool);

    /// @notice Change the weights URI (adapter owner only, not after retirement).
    /// @param adapterId The adapter id.
    /// @param uri The new URI.
    function setUri(bytes32 adapterId, string calldata uri) external;

    /// @notice Retire the adapter for good (adapter owner only): no further settlements; past accruals stay claimable.
    /// @param adapterId The adapter id.
    function retire(bytes32 adapterId) external;
}
