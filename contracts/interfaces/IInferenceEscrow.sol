// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IInferenceEscrow
/// @notice Payer deposits held per (payer, node), EIP-712 cumulative vouchers settled by nodes, contributor claims.
/// @dev One payment channel per (payer, node, listingId); a voucher carries the cumulative amount owed on it and
/// draws only on the deposit its payer holds for its node.
interface IInferenceEscrow {
    /// @notice A payer's signed promise: the total it owes `node` for `listingId` so far.
    struct Voucher {
        address payer;
        address node;
        bytes32 listingId;
        uint256 cumulativeAmount;
    }

    /// @notice Why a voucher in a batch was skipped (the `reason` of VoucherSkipped).
    enum SkipReason {
        None,
        WrongNode, // voucher.node is not the caller
        UnknownListing, // no such listing in the AdapterRegistry (a retired listing is known, and settles)
        NotGrowing, // cumulativeAmount <= settled (replay or stale)
        BadSignature, // not signed by voucher.payer for this chain and escrow
        InsufficientFunds // the payer's deposit for this node is below the growth
    }

    /// @notice A pending withdrawal request of a payer's deposit for one node: executable from `availableAt`
    /// until just before `expiresAt`, then it lapses.
    struct Withdrawal {
        uint128 amount;
        uint64 availableAt;
        uint64 expiresAt;
    }

    error ZeroAddress();
    error ZeroAmount();
    error ProtocolFeeTooHigh(uint256 protocolFeeBps, uint256 max);
    error ContributorShareTooHigh(uint256 contributorShareBps, uint256 max);
    error DelayOutOfRange(uint64 delay, uint64 min, uint64 max);
    error WindowOutOfRange(uint64 window, uint64 min, uint64 max);
    error InsufficientBalance(uint256 requested, uint256 available);
    error NoWithdrawalPending();
    error WithdrawalNotReady(uint64 availableAt);
    error WithdrawalLapsed(uint64 expiresAt);
    error NodeCannotSettle(address caller);
    error LengthMismatch();
    error NothingToClaim();

    /// @notice `amount` (what the escrow received) was added to the payer's deposit for `node`.
    event Deposited(address indexed payer, address indexed node, uint256 amount, uint256 balance);
    /// @notice A withdrawal request, replacing any earlier one for the same node.
    event WithdrawRequested(
        address indexed payer, address indexed node, uint256 amount, uint64 availableAt, uint64 expiresAt
    );
    /// @notice The payer cancelled its pending request for `node`.
    event WithdrawCancelled(address indexed payer, address indexed node);
    /// @notice A request was executed: `amount` paid out, `balance` left for `node`.
    event Withdrawn(address indexed payer, address indexed node, uint256 amount, uint256 balance);
    /// @notice One voucher paid: `amount` is the growth since the last settlement of the channel.
    event VoucherSettled(
        address indexed node,
        address indexed payer,
        bytes32 indexed listingId,
        uint256 cumulativeAmount,
        uint256 amount
    );
    /// @notice One voucher of a batch not paid, and why.
    event VoucherSkipped(
        address indexed node,
        address indexed payer,
        bytes32 indexed listingId,
        uint256 cumulativeAmount,
        SkipReason reason
    );
    /// @notice Totals of one settle call.
    event BatchSettled(
        address indexed node, uint256 count, uint256 paid, uint256 protocolFee, uint256 contributorShare
    );
    /// @notice A contributor took `amount` from a listing's pool.
    event Claimed(bytes32 indexed listingId, address indexed contributor, uint256 amount);
    /// @notice Fees that apply to settlements from `effectiveAt` on.
    event FeesScheduled(uint16 protocolFeeBps, uint16 contributorShareBps, uint64 effectiveAt);
    /// @notice The treasury receiving protocol fees changed.
    event TreasurySet(address treasury);
    /// @notice The delay of later withdrawal requests (and of later fee changes) changed.
    event WithdrawDelaySet(uint64 withdrawDelay);
    /// @notice The execution window of later withdrawal requests changed.
    event WithdrawWindowSet(uint64 withdrawWindow);

    /// @notice Deposit `amount` tokens (approved beforehand) for `node`: only `node`'s vouchers draw on them.
    /// @param node The node the deposit pays.
    /// @param amount Tokens pulled with transferFrom.
    /// @return credited What the escrow received and credited (less than `amount` for fee-on-transfer tokens).
    function deposit(address node, uint256 amount) external returns (uint256 credited);

    /// @notice Deposit for `node` with an ERC-2612 permit instead of a prior approval.
    /// @dev A permit already used (e.g. front-run) is tolerated when the allowance is in place.
    /// @param node The node the deposit pays.
    /// @param amount Tokens to deposit (and the permit's value).
    /// @param deadline The permit's deadline.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    /// @return credited What the escrow received and credited.
    function depositWithPermit(address node, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 credited);

    /// @notice Ask to withdraw `amount` of the deposit for `node`; replaces any earlier request for that node. It
    /// can be executed from now + withdrawDelay for withdrawWindow seconds, then lapses. The tokens stay settleable
    /// until `withdraw`, so the node can settle first; nodes treat the requested amount as unavailable.
    /// @param node The node.
    /// @param amount At most the current deposit for `node`.
    function requestWithdraw(address node, uint256 amount) external;

    /// @notice Cancel the pending request for `node` (the amount is available to the node again).
    /// @param node The node.
    function cancelWithdraw(address node) external;

    /// @notice Execute the pending request for `node` within its window; pays min(requested, deposit).
    /// @param node The node.
    /// @return amount Tokens sent to the caller.
    function withdraw(address node) external returns (uint256 amount);

    /// @notice Settle a batch of vouchers for the caller, a node that `canSettle` in the NodeRegistry. Bad vouchers
    /// are skipped with `VoucherSkipped`; the others pay their growth from their payer's deposit for the caller:
    /// protocol fee to the treasury, contributor share to the listing's pool, the rest to the caller.
    /// @param vouchers The vouchers, all with `node == msg.sender`.
    /// @param signatures 65-byte EIP-712 signatures by each voucher's payer, same order.
    /// @return paid Total taken from payers' deposits.
    function settle(Voucher[] calldata vouchers, bytes[] calldata signatures) external returns (uint256 paid);

    /// @notice Claim the caller's share of each listing's contributor pool.
    /// @param listingIds Listings to claim from; entries with nothing claimable are passed over.
    /// @return amount Tokens sent to the caller.
    function claim(bytes32[] calldata listingIds) external returns (uint256 amount);

    /// @notice What `contributor` can claim now from `listingId`: accrued * weight / 10000 - claimed.
    /// @param listingId The listing id.
    /// @param contributor The contributor.
    /// @return The claimable amount.
    function claimable(bytes32 listingId, address contributor) external view returns (uint256);

    /// @notice The cumulative amount already settled on a channel.
    /// @param payer The payer.
    /// @param node The node operator.
    /// @param listingId The listing id.
    /// @return The settled cumulative amount.
    function settled(address payer, address node, bytes32 listingId) external view returns (uint256);

    /// @notice A payer's deposit for `node` (including any amount requested for withdrawal).
    /// @param payer The payer.
    /// @param node The node.
    /// @return The deposit.
    function balanceOf(address payer, address node) external view returns (uint256);

    /// @notice What `node` may still accept vouchers against: the deposit minus the amount of a pending request
    /// that has not lapsed (matured or not).
    /// @param payer The payer.
    /// @param node The node.
    /// @return The available amount.
    function available(address payer, address node) external view returns (uint256);

    /// @notice The pending withdrawal request of `payer` for `node` (zero amount when none).
    /// @param payer The payer.
    /// @param node The node.
    /// @return The request.
    function withdrawalOf(address payer, address node) external view returns (Withdrawal memory);
}
