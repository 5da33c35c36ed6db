// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title INodeRegistry
/// @notice Staking registry of serving nodes: stake, unbond, slash, and the `isActive` check the escrow relies on.
interface INodeRegistry {
    /// @notice What the registry knows of one operator.
    /// @param peerId The libp2p peer id (multihash bytes).
    /// @param endpoint The public API endpoint (URL or multiaddr), may be empty.
    /// @param stake Bonded stake, counted for `isActive`.
    /// @param unbonding Stake waiting for the unbonding period; still slashable, not counted as active.
    /// @param unbondingEnd Timestamp from which `unbonding` can be withdrawn.
    /// @param stakeFloor The minStake in force at the operator's last `stake`: a later raise of minStake stops new
    /// business (`isActive`) but never takes settlement (`canSettle`) from a node still bonded at this floor.
    struct NodeInfo {
        bytes peerId;
        string endpoint;
        uint256 stake;
        uint256 unbonding;
        uint64 unbondingEnd;
        uint256 stakeFloor;
    }

    error ZeroAddress();
    error ZeroAmount();
    error EmptyPeerId();
    error PeerIdTooLong(uint256 length);
    error EndpointTooLong(uint256 length);
    error BelowMinStake(uint256 stake, uint256 minStake);
    error InsufficientStake(uint256 requested, uint256 available);
    error NothingToWithdraw();
    error StillUnbonding(uint64 unbondingEnd);
    error NotStaked(address operator);
    error PeriodTooLong(uint64 period, uint64 max);

    /// @notice Stake added (`amount` is what the registry received) and the peer id and endpoint bound.
    event Staked(address indexed operator, uint256 amount, uint256 totalStake, bytes peerId, string endpoint);
    /// @notice Bonded stake moved into unbonding; the whole `unbonding` sum is withdrawable from `unbondingEnd`.
    event UnstakeRequested(address indexed operator, uint256 amount, uint256 unbonding, uint64 unbondingEnd);
    /// @notice Unbonded stake paid out.
    event StakeWithdrawn(address indexed operator, uint256 amount);
    /// @notice Stake taken to the treasury for the evidence named.
    event Slashed(address indexed operator, uint256 amount, bytes32 indexed evidence, address indexed slasher);
    /// @notice The minimum bonded stake for `isActive` changed (takes effect at once; see `canSettle`).
    event MinStakeSet(uint256 minStake);
    /// @notice The unbonding period of later requests changed.
    event UnbondingPeriodSet(uint64 unbondingPeriod);
    /// @notice The treasury receiving slashed stake changed.
    event TreasurySet(address treasury);

    /// @notice Stake `amount` more tokens (after approving them) and set the node's peer id and endpoint.
    /// @dev `amount` may be zero to only update the peer id and endpoint; the bonded total must reach `minStake`.
    /// The stake credited is what the registry received (a fee-on-transfer token credits less than `amount`).
    /// @param amount Tokens pulled from the caller with transferFrom.
    /// @param peerId The libp2p peer id bytes (1..128 bytes).
    /// @param endpoint The API endpoint (at most 256 bytes).
    function stake(uint256 amount, bytes calldata peerId, string calldata endpoint) external;

    /// @notice Move `amount` of bonded stake into unbonding. The whole unbonding sum becomes withdrawable at
    /// max(current end, now + unbondingPeriod): a later request never brings an earlier sum's end forward.
    /// @param amount Tokens to unbond, at most the bonded stake.
    function requestUnstake(uint256 amount) external;

    /// @notice Withdraw all unbonding stake once the unbonding period has passed.
    /// @return amount Tokens sent to the caller.
    function withdrawStake() external returns (uint256 amount);

    /// @notice Slash an operator (SLASHER_ROLE): bonded stake first, then unbonding stake; tokens go to the treasury.
    /// @param operator The node operator.
    /// @param amount Upper bound on tokens taken; capped at what the operator has.
    /// @param evidence Hash of the off-chain evidence, for the record.
    /// @return slashed Tokens actually taken.
    function slash(address operator, uint256 amount, bytes32 evidence) external returns (uint256 slashed);

    /// @notice Whether `operator` may serve and settle: bonded stake >= minStake (and non-zero).
    /// @param operator The node operator.
    /// @return True when active.
    function isActive(address operator) external view returns (bool);

    /// @notice Whether `operator` may settle vouchers: bonded stake non-zero and at least min(minStake, its
    /// stakeFloor). True for every active node, and still true for a node left under a raised minStake.
    /// @param operator The node operator.
    /// @return True when it may settle.
    function canSettle(address operator) external view returns (bool);

    /// @notice Bonded stake of `operator` (excluding unbonding tokens).
    /// @param operator The node operator.
    /// @return The bonded stake.
    function stakeOf(address operator) external view returns (uint256);

    /// @notice Everything the registry holds about `operator`.
    /// @param operator The node operator.
    /// @return The node record.
    function nodeOf(address operator) external view returns (NodeInfo memory);
}
