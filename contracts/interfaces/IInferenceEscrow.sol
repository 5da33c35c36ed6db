// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IInferenceEscrow
/// @notice Payer deposits, EIP-712 cumulative vouchers settled by nodes, and contributor claims.
/// @dev One payment channel per (payer, node, adapterId); a voucher carries the cumulative amount owed on it.
interface IInferenceEscrow {
    /// @notice A payer's signed promise: the total it owes `node` for `adapterId` so far.
    struct Voucher {
        address payer;
        address node;
        bytes32 adapterId;
        uint256 cumulativeAmount;
    }

    /// @notice Why a voucher in a batch was skipped.
    enum SkipReason {
        None,
        WrongNode, // voucher.node is not the caller
        AdapterNotLive, // unknown or retired adapter
        NotGrowing, // cumulativeAmount <= settled (replay or stale)
        BadSignature, // not signed by voucher.payer for this chain and escrow
        InsufficientFunds // payer balance below the growth
    }

    /// @notice A pending withdrawal request of a payer.
    struct Withdrawal {
        uint128 amount;
        uint64 availableAt;
    }

    error ZeroAddress();
    error ZeroAmount();
    error FeesTooHigh(uint256 protocolFeeBps, uint256 contributorShareBps);
    error DelayTooLong(uint64 delay, uint64 max);
    error InsufficientBalance(uint256 requested, uint256 available);
    error NoWithdrawalPending();
    error WithdrawalNotReady(uint64 availableAt);
    error NotActiveNode(address caller);
    error LengthMismatch();
    error NothingToClaim();

    event Deposited(address indexed payer, uint256 amount, uint256 balance);
    event WithdrawRequested(address indexed payer, uint256 amount, uint64 availableAt);
    event Withdrawn(address indexed payer, uint256 amount);
    /// @notice One voucher paid: `amount` is the growth since the last settlement of the channel.
    event VoucherSettled(
        address indexed node, address indexed payer, bytes32 indexed adapterId, uint256 cumulativeAmount, uint256 amount
    );
    event VoucherSkipped(
        address indexed node, address indexed payer, bytes32 indexed adapterId, uint256 cumulativeAmount, SkipReason reason
    );
    /// @notice Totals of one settle call.
    event BatchSettled(address indexed node, uint256 count, uint256 paid, uint256 protocolFee, uint256 contributorShare);
    event Claimed(bytes32 indexed adapterId, address indexed contributor, uint256 amount);
    event FeesSet(uint16 protocolFeeBps, uint16 contributorShareBps);
    event TreasurySet(address treasury);
    event WithdrawDelaySet(uint64 withdrawDelay);

    /// @notice Deposit `amount` tokens (approved beforehand) into the caller's balance.
    /// @param amount Tokens pulled with transferFrom.
    function deposit(uint256 amount) external;

    /// @notice Deposit with an ERC-2612 permit instead of a prior approval.
    /// @dev A permit already used (e.g. front-run) is tolerated when the allowance is in place.
    /// @param amount Tokens to deposit (and the permit's value).
    /// @param deadline The permit's deadline.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Ask to withdraw `amount` after `withdrawDelay`; replaces any earlier request. The tokens stay
    /// settleable until `withdraw`, so nodes can settle outstanding vouchers first.
    /// @param amount At most the current balance.
    function requestWithdraw(uint256 amount) external;

    /// @notice Complete the pending request once its delay has passed; pays min(requested, balance).
    /// @return amount Tokens sent to the caller.
    function withdraw() external returns (uint256 amount);

    /// @notice Settle a batch of vouchers for the caller, an active node. Bad vouchers are skipped with
    /// `VoucherSkipped`; the others pay their growth: protocol fee to the treasury, contributor share to the
    /// adapter's pool, the rest to the caller.
    /// @param vouchers The vouchers, all with `node == msg.sender`.
    /// @param signatures 65-byte EIP-712 signatures by each voucher's payer, same order.
    /// @return paid Total taken from payers' balances.
    function settle(Voucher[] calldata vouchers, bytes[] calldata signatures) external returns (uint256 paid);

    /// @notice Claim the caller's share of each adapter's contributor pool.
    /// @param adapterIds Adapters to claim from; entries with nothing claimable are passed over.
    /// @return amount Tokens sent to the caller.
    function claim(bytes32[] calldata adapterIds) external returns (uint256 amount);

    /// @notice What `contributor` can claim now from `adapterId`: accrued * weight / 10000 - claimed.
    /// @param adapterId The adapter id.
    /// @param contributor The contributor.
    /// @return The claimable amount.
    function claimable(bytes32 adapterId, address contributor) external view returns (uint256);

    /// @notice The cumulative amount already settled on a channel.
    /// @param payer The payer.
    /// @param node The node operator.
    /// @param adapterId The adapter id.
    /// @return The settled cumulative amount.
    function settled(address payer, address node, bytes32 adapterId) external view returns (uint256);

    /// @notice A payer's escrowed balance (including any amount requested for withdrawal).
    /// @param payer The payer.
    /// @return The balance.
    function balanceOf(address payer) external view returns (uint256);
}
