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
    struct NodeInfo {
        bytes peerId;
        string endpoint;
        uint256 stake;
        uint256 unbonding;
        uint64 unbondingEnd;
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

    event Staked(address indexed operator, uint256 amount, uint256 totalStake, bytes peerId, string endpoint);
    event UnstakeRequested(address indexed operator, uint256 amount, uint256 unbonding, uint64 unbondingEnd);
    event StakeWithdrawn(address indexed operator, uint256 amount);
    event Slashed(address indexed operator, uint256 amount, bytes32 indexed evidence, address indexed slasher);
    event MinStakeSet(uint256 minStake);
    event UnbondingPeriodSet(uint64 unbondingPeriod);
    event TreasurySet(address treasury);

    /// @notice Stake `amount` more tokens (after approving them) and set the node's peer id and endpoint.
    /// @dev `amount` may be zero to only update the peer id and endpoint; the bonded total must reach `minStake`.
    /// @param amount Tokens pulled from the caller with transferFrom.
    /// @param peerId The libp2p peer id bytes (1..128 bytes).
    /// @param endpoint The API endpoint (at most 256 bytes).
    function stake(uint256 amount, bytes calldata peerId, string calldata endpoint) external;

    /// @notice Move `amount` of bonded stake into unbonding; restarts the unbonding timer for the whole unbonding sum.
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

    /// @notice Bonded stake of `operator` (excluding unbonding tokens).
    /// @param operator The node operator.
    /// @return The bonded stake.
    function stakeOf(address operator) external view returns (uint256);

    /// @notice Everything the registry holds about `operator`.
    /// @param operator The node operator.
    /// @return The node record.
    function nodeOf(address operator) external view returns (NodeInfo memory);
}
