// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IAdapterRegistry} from "./interfaces/IAdapterRegistry.sol";
import {IInferenceEscrow} from "./interfaces/IInferenceEscrow.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";

/// @title InferenceEscrow
/// @notice Payers deposit OPEN for a node; that node settles EIP-712 cumulative vouchers (one channel per payer,
/// node and listing) against that deposit only; each settlement splits the growth into a protocol fee, the
/// listing's contributor pool and the node's part. Contributors claim weightBps/10000 of everything their listing's
/// pool ever accrued, in O(1) per listing. Withdrawals wait a delay (so nodes settle first) and lapse after a
/// window; fee changes are capped and take effect no sooner than the withdrawal delay.
/// @dev Token accounting: balanceOf(this) == sum of deposits + sum over listings (accrued - claimed). Rounding
/// dust: a listing's pool keeps accrued - sum(floor(accrued * w / 10000)) < (number of contributors) wei forever.
contract InferenceEscrow is IInferenceEscrow, AccessControl, EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type hash of {Voucher}.
    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address payer,address node,bytes32 listingId,uint256 cumulativeAmount)");
    /// @notice Fees are in basis points of this total.
    uint256 public constant TOTAL_BPS = 10_000;
    /// @notice Upper bound on the protocol fee (10%).
    uint16 public constant MAX_PROTOCOL_FEE_BPS = 1_000;
    /// @notice Upper bound on the contributor share (50%).
    uint16 public constant MAX_CONTRIBUTOR_SHARE_BPS = 5_000;
    /// @notice Lower bound on the withdrawal delay: the time a node has to settle before a deposit can leave.
    uint64 public constant MIN_WITHDRAW_DELAY = 1 hours;
    /// @notice Upper bound on the withdrawal delay.
    uint64 public constant MAX_WITHDRAW_DELAY = 30 days;
    /// @notice Lower bound on the window in which a matured request can be executed.
    uint64 public constant MIN_WITHDRAW_WINDOW = 1 hours;
    /// @notice Upper bound on that window.
    uint64 public constant MAX_WITHDRAW_WINDOW = 30 days;

    /// @notice The payment token.
    IERC20 public immutable token;
    /// @notice The staking registry asked whether a caller of `settle` may settle.
    INodeRegistry public immutable nodes;
    /// @notice The adapter registry holding listings and their attribution.
    IAdapterRegistry public immutable listings;

    /// @dev Settlement parameters in force, packed in one slot and read once per batch.
    struct Params {
        address treasury;
        uint16 protocolFeeBps;
        uint16 contributorShareBps;
        uint64 withdrawDelay;
    }

    /// @dev A scheduled fee change; effectiveAt 0 when none.
    struct FeeChange {
        uint16 protocolFeeBps;
        uint16 contributorShareBps;
        uint64 effectiveAt;
    }

    Params private _params;
    FeeChange private _next;
    uint64 private _withdrawWindow;
    mapping(address payer => mapping(address node => uint256)) private _balances;
    mapping(address payer => mapping(address node => Withdrawal)) private _withdrawals;
    mapping(bytes32 channel => uint256) private _settled;
    /// @notice Total contributor share ever accrued to a listing's pool.
    mapping(bytes32 listingId => uint256) public accrued;
    /// @notice Total a contributor has claimed from a listing's pool.
    mapping(bytes32 listingId => mapping(address contributor => uint256)) public claimed;

    /// @param token_ The payment token (must support ERC-2612 for depositWithPermit).
    /// @param nodes_ The node registry.
    /// @param listings_ The adapter registry.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (parameters).
    /// @param treasury_ Receives protocol fees.
    /// @param protocolFeeBps_ Protocol fee in basis points, at most MAX_PROTOCOL_FEE_BPS.
    /// @param contributorShareBps_ Contributor share in basis points, at most MAX_CONTRIBUTOR_SHARE_BPS.
    /// @param withdrawDelay_ Seconds between requestWithdraw and withdraw, within the bounds.
    /// @param withdrawWindow_ Seconds a matured request stays executable, within the bounds.
    constructor(
        IERC20 token_,
        INodeRegistry nodes_,
        IAdapterRegistry listings_,
        address admin,
        address treasury_,
        uint16 protocolFeeBps_,
        uint16 contributorShareBps_,
        uint64 withdrawDelay_,
        uint64 withdrawWindow_
    ) EIP712("OpenLoRA Escrow", "2") {
        if (
            address(token_) == address(0) || address(nodes_) == address(0) || address(listings_) == address(0)
                || admin == address(0)
        ) revert ZeroAddress();
        token = token_;
        nodes = nodes_;
        listings = listings_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTreasury(treasury_);
        _checkFees(protocolFeeBps_, contributorShareBps_);
        _params.protocolFeeBps = protocolFeeBps_;
        _params.contributorShareBps = contributorShareBps_;
        emit FeesScheduled(protocolFeeBps_, contributorShareBps_, uint64(block.timestamp));
        _setWithdrawDelay(withdrawDelay_);
        _setWithdrawWindow(withdrawWindow_);
    }

    // ---------------------------------------------------------------- payers

    /// @inheritdoc IInferenceEscrow
    function deposit(address node, uint256 amount) external nonReentrant returns (uint256 credited) {
        return _deposit(node, amount);
    }

    /// @inheritdoc IInferenceEscrow
    function depositWithPermit(address node, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        returns (uint256 credited)
    {
        // A front-runner may have spent the permit already; the allowance it set is then what counts.
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        return _deposit(node, amount);
    }

    /// @inheritdoc IInferenceEscrow
    function requestWithdraw(address node, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = _balances[msg.sender][node];
        if (amount > balance) revert InsufficientBalance(amount, balance);
        uint64 availableAt = uint64(block.timestamp) + _params.withdrawDelay;
        uint64 expiresAt = availableAt + _withdrawWindow;
        _withdrawals[msg.sender][node] =
            Withdrawal({amount: SafeCast.toUint128(amount), availableAt: availableAt, expiresAt: expiresAt});
        emit WithdrawRequested(msg.sender, node, amount, availableAt, expiresAt);
    }

    /// @inheritdoc IInferenceEscrow
    function cancelWithdraw(address node) external {
        if (_withdrawals[msg.sender][node].amount == 0) revert NoWithdrawalPending();
        delete _withdrawals[msg.sender][node];
        emit WithdrawCancelled(msg.sender, node);
    }

    /// @inheritdoc IInferenceEscrow
    function withdraw(address node) external nonReentrant returns (uint256 amount) {
        Withdrawal memory w = _withdrawals[msg.sender][node];
        if (w.amount == 0) revert NoWithdrawalPending();
        if (block.timestamp < w.availableAt) revert WithdrawalNotReady(w.availableAt);
        // A matured request does not wait forever: after the window the node may again count on the amount.
        if (block.timestamp >= w.expiresAt) revert WithdrawalLapsed(w.expiresAt);
        uint256 balance = _balances[msg.sender][node];
        amount = w.amount < balance ? w.amount : balance;
        balance -= amount;
        _balances[msg.sender][node] = balance;
        delete _withdrawals[msg.sender][node];
        emit Withdrawn(msg.sender, node, amount, balance);
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- nodes

    /// @inheritdoc IInferenceEscrow
    function settle(Voucher[] calldata vouchers, bytes[] calldata signatures)
        external
        nonReentrant
        returns (uint256 paid)
    {
        uint256 n = vouchers.length;
        if (n != signatures.length) revert LengthMismatch();
        if (!nodes.canSettle(msg.sender)) revert NodeCannotSettle(msg.sender);
        Params memory p = _paramsNow();

        uint256 feeTotal;
        uint256 shareTotal;
        uint256 count;
        bytes32 knownId; // last listing found registered in this batch: saves a registry call for runs of one listing
        for (uint256 i; i < n; ++i) {
            Voucher calldata v = vouchers[i];
            (SkipReason reason, uint256 amount) = _check(v, signatures[i], knownId);
            if (reason != SkipReason.None) {
                emit VoucherSkipped(msg.sender, v.payer, v.listingId, v.cumulativeAmount, reason);
                continue;
            }
            knownId = v.listingId;
            _balances[v.payer][msg.sender] -= amount;
            _settled[_channel(v.payer, msg.sender, v.listingId)] = v.cumulativeAmount;
            uint256 share = amount * p.contributorShareBps / TOTAL_BPS;
            if (share != 0) accrued[v.listingId] += share;
            feeTotal += amount * p.protocolFeeBps / TOTAL_BPS;
            shareTotal += share;
            paid += amount;
            ++count;
            emit VoucherSettled(msg.sender, v.payer, v.listingId, v.cumulativeAmount, amount);
        }

        emit BatchSettled(msg.sender, count, paid, feeTotal, shareTotal);
        if (feeTotal != 0) token.safeTransfer(p.treasury, feeTotal);
        uint256 toNode = paid - feeTotal - shareTotal;
        if (toNode != 0) token.safeTransfer(msg.sender, toNode);
    }

    /// @dev Validates one voucher for the caller; returns the growth to pay, or why it is skipped. No state change.
    function _check(Voucher calldata v, bytes calldata signature, bytes32 knownId)
        private
        view
        returns (SkipReason, uint256)
    {
        if (v.node != msg.sender) return (SkipReason.WrongNode, 0);
        // Registered is enough: a retired listing stops new use, never what was already signed.
        if ((v.listingId != knownId || knownId == bytes32(0)) && !listings.isRegistered(v.listingId)) {
            return (SkipReason.UnknownListing, 0);
        }
        uint256 done = _settled[_channel(v.payer, msg.sender, v.listingId)];
        if (v.cumulativeAmount <= done) return (SkipReason.NotGrowing, 0);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(_hashVoucher(v), signature);
        if (err != ECDSA.RecoverError.NoError || signer != v.payer) return (SkipReason.BadSignature, 0);
        uint256 amount = v.cumulativeAmount - done;
        if (_balances[v.payer][msg.sender] < amount) return (SkipReason.InsufficientFunds, 0);
        return (SkipReason.None, amount);
    }

    // ---------------------------------------------------------------- contributors

    /// @inheritdoc IInferenceEscrow
    function claim(bytes32[] calldata listingIds) external nonReentrant returns (uint256 amount) {
        for (uint256 i; i < listingIds.length; ++i) {
            bytes32 id = listingIds[i];
            uint256 due = _entitled(id, msg.sender);
            uint256 done = claimed[id][msg.sender];
            if (due <= done) continue;
            claimed[id][msg.sender] = due;
            amount += due - done;
            emit Claimed(id, msg.sender, due - done);
        }
        if (amount == 0) revert NothingToClaim();
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IInferenceEscrow
    function claimable(bytes32 listingId, address contributor) external view returns (uint256) {
        uint256 due = _entitled(listingId, contributor);
        uint256 done = claimed[listingId][contributor];
        return due > done ? due - done : 0;
    }

    /// @dev floor(accrued * weight / 10000): non-decreasing in accrued, and summing to at most accrued.
    function _entitled(bytes32 listingId, address contributor) private view returns (uint256) {
        uint256 weight = listings.weightOf(listingId, contributor);
        if (weight == 0) return 0;
        return accrued[listingId] * weight / TOTAL_BPS;
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IInferenceEscrow
    function settled(address payer, address node, bytes32 listingId) external view returns (uint256) {
        return _settled[_channel(payer, node, listingId)];
    }

    /// @inheritdoc IInferenceEscrow
    function balanceOf(address payer, address node) external view returns (uint256) {
        return _balances[payer][node];
    }

    /// @inheritdoc IInferenceEscrow
    function available(address payer, address node) external view returns (uint256) {
        uint256 balance = _balances[payer][node];
        Withdrawal memory w = _withdrawals[payer][node];
        if (w.amount == 0 || block.timestamp >= w.expiresAt) return balance;
        return w.amount >= balance ? 0 : balance - w.amount;
    }

    /// @inheritdoc IInferenceEscrow
    function withdrawalOf(address payer, address node) external view returns (Withdrawal memory) {
        return _withdrawals[payer][node];
    }

    /// @notice The EIP-712 digest a payer signs for `voucher` on this chain and this escrow.
    /// @param voucher The voucher.
    /// @return The typed-data digest.
    function hashVoucher(Voucher calldata voucher) external view returns (bytes32) {
        return _hashVoucher(voucher);
    }

    /// @notice The EIP-712 domain separator (name "OpenLoRA Escrow", version "2", chain id, this address).
    /// @return The domain separator.
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice Receives protocol fees.
    /// @return The treasury address.
    function treasury() external view returns (address) {
        return _params.treasury;
    }

    /// @notice Protocol fee in basis points that a settlement now pays.
    /// @return The fee.
    function protocolFeeBps() external view returns (uint16) {
        return _paramsNow().protocolFeeBps;
    }

    /// @notice Contributor share in basis points that a settlement now pays.
    /// @return The share.
    function contributorShareBps() external view returns (uint16) {
        return _paramsNow().contributorShareBps;
    }

    /// @notice The scheduled fee change not yet in effect (all zero when none).
    /// @return protocolFeeBps_ The protocol fee it sets.
    /// @return contributorShareBps_ The contributor share it sets.
    /// @return effectiveAt From when settlements pay it.
    function pendingFees()
        external
        view
        returns (uint16 protocolFeeBps_, uint16 contributorShareBps_, uint64 effectiveAt)
    {
        FeeChange memory c = _next;
        if (c.effectiveAt == 0 || block.timestamp >= c.effectiveAt) return (0, 0, 0);
        return (c.protocolFeeBps, c.contributorShareBps, c.effectiveAt);
    }

    /// @notice Seconds a withdrawal request waits before it can be executed.
    /// @return The delay.
    function withdrawDelay() external view returns (uint64) {
        return _params.withdrawDelay;
    }

    /// @notice Seconds a matured withdrawal request stays executable.
    /// @return The window.
    function withdrawWindow() external view returns (uint64) {
        return _withdrawWindow;
    }

    // ---------------------------------------------------------------- admin

    /// @notice Schedule new fees (admin), effective `withdrawDelay` seconds from now, so nodes settle what they
    /// earned under the old fees first. Replaces a change not yet in effect.
    /// @param protocolFeeBps_ Protocol fee in basis points, at most MAX_PROTOCOL_FEE_BPS.
    /// @param contributorShareBps_ Contributor share in basis points, at most MAX_CONTRIBUTOR_SHARE_BPS.
    function scheduleFees(uint16 protocolFeeBps_, uint16 contributorShareBps_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkFees(protocolFeeBps_, contributorShareBps_);
        FeeChange memory due = _next;
        if (due.effectiveAt != 0 && block.timestamp >= due.effectiveAt) {
            _params.protocolFeeBps = due.protocolFeeBps;
            _params.contributorShareBps = due.contributorShareBps;
        }
        uint64 effectiveAt = uint64(block.timestamp) + _params.withdrawDelay;
        _next = FeeChange({
            protocolFeeBps: protocolFeeBps_,
            contributorShareBps: contributorShareBps_,
            effectiveAt: effectiveAt
        });
        emit FeesScheduled(protocolFeeBps_, contributorShareBps_, effectiveAt);
    }

    /// @notice Set the treasury that receives protocol fees (admin).
    /// @param treasury_ New treasury, non-zero.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    /// @notice Set the withdrawal delay (admin); applies to later requests and later fee changes.
    /// @param delay New delay in seconds, within [MIN_WITHDRAW_DELAY, MAX_WITHDRAW_DELAY].
    function setWithdrawDelay(uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setWithdrawDelay(delay);
    }

    /// @notice Set the execution window of withdrawal requests (admin); applies to later requests.
    /// @param window New window in seconds, within [MIN_WITHDRAW_WINDOW, MAX_WITHDRAW_WINDOW].
    function setWithdrawWindow(uint64 window) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setWithdrawWindow(window);
    }

    // ---------------------------------------------------------------- internals

    /// @dev Interaction before effects by necessity: the credit is the balance the escrow actually received
    /// (fee-on-transfer tokens deliver less than `amount`); nonReentrant guards every entry point.
    function _deposit(address node, uint256 amount) private returns (uint256 credited) {
        if (node == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        credited = token.balanceOf(address(this)) - before;
        if (credited == 0) revert ZeroAmount();
        uint256 balance = _balances[msg.sender][node] + credited;
        _balances[msg.sender][node] = balance;
        emit Deposited(msg.sender, node, credited, balance);
    }

    /// @dev The parameters a settlement uses now: the scheduled fee change once it is due, else the current fees.
    function _paramsNow() private view returns (Params memory p) {
        p = _params;
        FeeChange memory c = _next;
        if (c.effectiveAt != 0 && block.timestamp >= c.effectiveAt) {
            p.protocolFeeBps = c.protocolFeeBps;
            p.contributorShareBps = c.contributorShareBps;
        }
    }

    function _hashVoucher(Voucher calldata v) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(VOUCHER_TYPEHASH, v.payer, v.node, v.listingId, v.cumulativeAmount))
        );
    }

    function _channel(address payer, address node, bytes32 listingId) private pure returns (bytes32) {
        return keccak256(abi.encode(payer, node, listingId));
    }

    function _checkFees(uint16 protocolFeeBps_, uint16 contributorShareBps_) private pure {
        if (protocolFeeBps_ > MAX_PROTOCOL_FEE_BPS) revert ProtocolFeeTooHigh(protocolFeeBps_, MAX_PROTOCOL_FEE_BPS);
        if (contributorShareBps_ > MAX_CONTRIBUTOR_SHARE_BPS) {
            revert ContributorShareTooHigh(contributorShareBps_, MAX_CONTRIBUTOR_SHARE_BPS);
        }
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        _params.treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    function _setWithdrawDelay(uint64 delay) private {
        if (delay < MIN_WITHDRAW_DELAY || delay > MAX_WITHDRAW_DELAY) {
            revert DelayOutOfRange(delay, MIN_WITHDRAW_DELAY, MAX_WITHDRAW_DELAY);
        }
        _params.withdrawDelay = delay;
        emit WithdrawDelaySet(delay);
    }

    function _setWithdrawWindow(uint64 window) private {
        if (window < MIN_WITHDRAW_WINDOW || window > MAX_WITHDRAW_WINDOW) {
            revert WindowOutOfRange(window, MIN_WITHDRAW_WINDOW, MAX_WITHDRAW_WINDOW);
        }
        _withdrawWindow = window;
        emit WithdrawWindowSet(window);
    }
}
