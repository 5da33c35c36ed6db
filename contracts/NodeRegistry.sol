// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";

/// @title NodeRegistry
/// @notice Node operators stake OPEN, bind a libp2p peer id and an endpoint, unbond after a period, and can be
/// slashed by SLASHER_ROLE. Peers ask `isActive` before trusting a node; the escrow asks `canSettle` before a node
/// settles, which a raise of minStake does not take away from a node bonded at the minimum it staked under.
/// @dev Unbonding tokens are no longer active but remain slashable until withdrawn. Token accounting:
/// balanceOf(this) == sum of bonded + unbonding stake (stake credits the received amount).
contract NodeRegistry is INodeRegistry, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to slash.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice Upper bound on the unbonding period an admin may set.
    uint64 public constant MAX_UNBONDING_PERIOD = 365 days;
    /// @notice Upper bound on the peer id length in bytes.
    uint256 public constant MAX_PEER_ID_LENGTH = 128;
    /// @notice Upper bound on the endpoint length in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    /// @notice The staking token.
    IERC20 public immutable token;
    /// @notice Receives slashed stake.
    address public treasury;
    /// @notice Bonded stake an operator needs to be active.
    uint256 public minStake;
    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    uint64 public unbondingPeriod;

    mapping(address operator => NodeInfo) private _nodes;

    /// @param token_ The staking token.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE and SLASHER_ROLE.
    /// @param treasury_ Receives slashed stake.
    /// @param minStake_ Minimum bonded stake, non-zero.
    /// @param unbondingPeriod_ Unbonding period in seconds.
    constructor(IERC20 token_, address admin, address treasury_, uint256 minStake_, uint64 unbondingPeriod_) {
        if (address(token_) == address(0) || admin == address(0)) revert ZeroAddress();
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(SLASHER_ROLE, admin);
        _setTreasury(treasury_);
        _setMinStake(minStake_);
        _setUnbondingPeriod(unbondingPeriod_);
    }

    /// @inheritdoc INodeRegistry
    function stake(uint256 amount, bytes calldata peerId, string calldata endpoint) external nonReentrant {
        if (peerId.length == 0) revert EmptyPeerId();
        if (peerId.length > MAX_PEER_ID_LENGTH) revert PeerIdTooLong(peerId.length);
        if (bytes(endpoint).length > MAX_ENDPOINT_LENGTH) revert EndpointTooLong(bytes(endpoint).length);
        NodeInfo storage n = _nodes[msg.sender];
        uint256 min = minStake;
        if (n.stake + amount < min) revert BelowMinStake(n.stake + amount, min);
        // Interaction first by necessity: the credit is the balance the registry actually received (fee-on-transfer
        // tokens deliver less than `amount`); nonReentrant guards the effects that follow.
        uint256 received = amount > 0 ? _pull(amount) : 0;
        uint256 total = n.stake + received;
        if (total < min) revert BelowMinStake(total, min);
        n.stake = total;
        n.stakeFloor = min;
        n.peerId = peerId;
        n.endpoint = endpoint;
        emit Staked(msg.sender, received, total, peerId, endpoint);
    }

    /// @inheritdoc INodeRegistry
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        NodeInfo storage n = _nodes[msg.sender];
        uint256 bonded = n.stake;
        if (amount > bonded) revert InsufficientStake(amount, bonded);
        // Never earlier than the end already set: a 1-wei request after a shorter period must not free the earlier sum.
        uint64 end = uint64(block.timestamp) + unbondingPeriod;
        if (end < n.unbondingEnd) end = n.unbondingEnd;
        n.stake = bonded - amount;
        uint256 unbonding = n.unbonding + amount;
        n.unbonding = unbonding;
        n.unbondingEnd = end;
        emit UnstakeRequested(msg.sender, amount, unbonding, end);
    }

    /// @inheritdoc INodeRegistry
    function withdrawStake() external nonReentrant returns (uint256 amount) {
        NodeInfo storage n = _nodes[msg.sender];
        amount = n.unbonding;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < n.unbondingEnd) revert StillUnbonding(n.unbondingEnd);
        n.unbonding = 0;
        n.unbondingEnd = 0;
        emit StakeWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc INodeRegistry
    function slash(address operator, uint256 amount, bytes32 evidence)
        external
        onlyRole(SLASHER_ROLE)
        nonReentrant
        returns (uint256 slashed)
    {
        if (amount == 0) revert ZeroAmount();
        NodeInfo storage n = _nodes[operator];
        uint256 bonded = n.stake;
        uint256 unbonding = n.unbonding;
        if (bonded + unbonding == 0) revert NotStaked(operator);
        uint256 fromBonded = amount < bonded ? amount : bonded;
        uint256 rest = amount - fromBonded;
        uint256 fromUnbonding = rest < unbonding ? rest : unbonding;
        n.stake = bonded - fromBonded;
        n.unbonding = unbonding - fromUnbonding;
        slashed = fromBonded + fromUnbonding;
        emit Slashed(operator, slashed, evidence, msg.sender);
        token.safeTransfer(treasury, slashed);
    }

    /// @inheritdoc INodeRegistry
    function isActive(address operator) external view returns (bool) {
        uint256 bonded = _nodes[operator].stake;
        return bonded != 0 && bonded >= minStake;
    }

    /// @inheritdoc INodeRegistry
    function canSettle(address operator) external view returns (bool) {
        NodeInfo storage n = _nodes[operator];
        uint256 bonded = n.stake;
        uint256 floor = n.stakeFloor < minStake ? n.stakeFloor : minStake;
        return bonded != 0 && bonded >= floor;
    }

    /// @inheritdoc INodeRegistry
    function stakeOf(address operator) external view returns (uint256) {
        return _nodes[operator].stake;
    }

    /// @inheritdoc INodeRegistry
    function nodeOf(address operator) external view returns (NodeInfo memory) {
        return _nodes[operator];
    }

    /// @notice Set the minimum bonded stake (admin). Takes effect at once for `isActive` (new business); a node
    /// bonded at the minimum it staked under keeps `canSettle`, so what it earned still settles.
    /// @param minStake_ New minimum, non-zero.
    function setMinStake(uint256 minStake_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMinStake(minStake_);
    }

    /// @notice Set the unbonding period (admin); applies to later unstake requests.
    /// @param period New period in seconds, at most MAX_UNBONDING_PERIOD.
    function setUnbondingPeriod(uint64 period) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setUnbondingPeriod(period);
    }

    /// @notice Set the treasury that receives slashed stake (admin).
    /// @param treasury_ New treasury, non-zero.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    function _pull(uint256 amount) private returns (uint256 received) {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        received = token.balanceOf(address(this)) - before;
    }

    function _setMinStake(uint256 minStake_) private {
        if (minStake_ == 0) revert ZeroAmount();
        minStake = minStake_;
        emit MinStakeSet(minStake_);
    }

    function _setUnbondingPeriod(uint64 period) private {
        if (period > MAX_UNBONDING_PERIOD) revert PeriodTooLong(period, MAX_UNBONDING_PERIOD);
        unbondingPeriod = period;
        emit UnbondingPeriodSet(period);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }
}
