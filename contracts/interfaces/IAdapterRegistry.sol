// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAdapterRegistry
/// @notice Listings of LoRA adapters. A listing is (registrant, content hash) with a fixed attribution
/// (contributors and weights in basis points); its id is keccak256(abi.encode(registrant, contentHash)), so
/// registering the same public weights first takes nothing from anyone. The content hash (sha256 of the adapter's
/// canonical encoding) is what nodes store, send and verify; the listing is what payers pay and contributors claim.
interface IAdapterRegistry {
    /// @notice One listing. The first slot packs registrant, rank, retired and registeredAt.
    /// @param registrant Who registered it; the only one who may change the uri or retire it.
    /// @param rank LoRA rank of the adapter.
    /// @param retired True once retired: no new use; vouchers already signed for it still settle.
    /// @param registeredAt Block timestamp of the registration.
    /// @param contentHash sha256 of the adapter's canonical encoding.
    /// @param baseModelId Identifier of the base model the adapter applies to.
    /// @param size Length in bytes of the canonical encoding (what a fetch may transfer, exactly).
    /// @param retiredAt Block timestamp of the retirement (0 while live).
    /// @param uri Where to fetch the weights.
    struct Listing {
        address registrant;
        uint16 rank;
        bool retired;
        uint64 registeredAt;
        bytes32 contentHash;
        bytes32 baseModelId;
        uint64 size;
        uint64 retiredAt;
        string uri;
    }

    error InvalidContentHash();
    error InvalidRank();
    error InvalidSize();
    error ListingExists(bytes32 listingId);
    error UnknownListing(bytes32 listingId);
    error ListingIsRetired(bytes32 listingId);
    error NotRegistrant(bytes32 listingId, address caller);
    error NoContributors();
    error TooManyContributors(uint256 count, uint256 max);
    error LengthMismatch();
    error ZeroContributor();
    error ZeroWeight(address contributor);
    error DuplicateContributor(address contributor);
    error WeightsNotFull(uint256 sum);

    /// @notice A listing was registered (its attribution follows in ListingAttribution, same transaction).
    event ListingRegistered(
        bytes32 indexed listingId,
        address indexed registrant,
        bytes32 indexed contentHash,
        bytes32 baseModelId,
        uint16 rank,
        uint64 size,
        string uri
    );
    /// @notice The fixed attribution of a new listing.
    event ListingAttribution(bytes32 indexed listingId, address[] contributors, uint16[] weightsBps);
    /// @notice The registrant changed the listing's uri.
    event ListingUriSet(bytes32 indexed listingId, string uri);
    /// @notice The registrant retired the listing (no new use; earned vouchers still settle).
    event ListingRetired(bytes32 indexed listingId, bytes32 indexed contentHash);

    /// @notice Register a listing of `contentHash` owned by the caller. The attribution is fixed forever.
    /// @param contentHash sha256 of the canonical encoding; non-zero; one listing per (caller, contentHash).
    /// @param baseModelId Identifier of the base model the adapter applies to.
    /// @param rank LoRA rank, non-zero.
    /// @param size Length in bytes of the canonical encoding, non-zero.
    /// @param uri Where to fetch the weights.
    /// @param contributors 1..MAX_CONTRIBUTORS distinct non-zero addresses.
    /// @param weightsBps Non-zero weights, one per contributor, summing to 10000.
    /// @return listingId keccak256(abi.encode(msg.sender, contentHash)).
    function register(
        bytes32 contentHash,
        bytes32 baseModelId,
        uint16 rank,
        uint64 size,
        string calldata uri,
        address[] calldata contributors,
        uint16[] calldata weightsBps
    ) external returns (bytes32 listingId);

    /// @notice The id of the listing `registrant` has (or would have) for `contentHash`.
    /// @param registrant The registrant.
    /// @param contentHash The content hash.
    /// @return keccak256(abi.encode(registrant, contentHash)).
    function listingIdOf(address registrant, bytes32 contentHash) external pure returns (bytes32);

    /// @notice The listing record (registrant zero when unknown).
    /// @param listingId The listing id.
    /// @return The record.
    function listing(bytes32 listingId) external view returns (Listing memory);

    /// @notice The attribution of a listing.
    /// @param listingId The listing id.
    /// @return contributors The contributor addresses.
    /// @return weightsBps Their weights in basis points, same order.
    function contributorsOf(bytes32 listingId)
        external
        view
        returns (address[] memory contributors, uint16[] memory weightsBps);

    /// @notice The weight of `contributor` in `listingId` (0 when not a contributor).
    /// @param listingId The listing id.
    /// @param contributor The contributor address.
    /// @return The weight in basis points.
    function weightOf(bytes32 listingId, address contributor) external view returns (uint16);

    /// @notice Whether the listing exists, retired or not (what the escrow checks before paying a voucher).
    /// @param listingId The listing id.
    /// @return True when registered.
    function isRegistered(bytes32 listingId) external view returns (bool);

    /// @notice Whether the listing exists and is not retired (what nodes check before serving or fetching it).
    /// @param listingId The listing id.
    /// @return True when registered and live.
    function isLive(bytes32 listingId) external view returns (bool);

    /// @notice Change the weights uri (registrant only, not after retirement).
    /// @param listingId The listing id.
    /// @param uri The new uri.
    function setUri(bytes32 listingId, string calldata uri) external;

    /// @notice Retire the listing for good (registrant only): nodes stop serving it, payers stop signing for it;
    /// vouchers already signed still settle and past accruals stay claimable.
    /// @param listingId The listing id.
    function retire(bytes32 listingId) external;
}
