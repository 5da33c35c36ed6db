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
/// @notice Payers deposit OPEN; nodes settle EIP-712 cumulative vouchers (one channel per payer, node and adapter);
/// each settlement splits the growth into a protocol fee, the adapter's contributor pool, and the node's part.
/// Contributors claim weightBps/10000 of everything their adapter's pool ever accrued, in O(1) per adapter.
/// @dev Token accounting: balanceOf(this) == sum(payer balances) + sum over adapters (accrued - claimed), with
/// rounding dust (< number of contributors wei per adapter) left unclaimed in the pool.
contract InferenceEscrow is IInferenceEscrow, AccessControl, EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type hash of {Voucher}.
    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address payer,address node,bytes32 adapterId,uint256 cumulativeAmount)");
    /// @notice Fees are in basis points of this total.
    uint256 public constant TOTAL_BPS = 10_000;
    /// @notice Upper bound on the withdrawal delay an admin may set.
    uint64 public constant MAX_WITHDRAW_DELAY = 30 days;

    /// @notice The payment token.
    IERC20 public immutable token;
    /// @notice The staking registry asked whether a caller of `settle` is active.
    INodeRegistry public immutable nodes;
    /// @notice The adapter registry holding attribution.
    IAdapterRegistry public immutable adapters;

    /// @dev Settlement parameters, packed in one slot and read once per batch.
    struct Params {
        address treasury;
        uint16 protocolFeeBps;
        uint16 contributorShareBps;
        uint64 withdrawDelay;
    }

    Params private _params;
    mapping(address payer => uint256) private _balances;
    mapping(address payer => Withdrawal) private _withdrawals;
    mapping(bytes32 channel => uint256) private _settled;
    /// @notice Total contributor share ever accrued to an adapter's pool.
    mapping(bytes32 adapterId => uint256) public accrued;
    /// @notice Total a contributor has claimed from an adapter's pool.
    mapping(bytes32 adapterId => mapping(address contributor => uint256)) public claimed;

    /// @param token_ The payment token (must support ERC-2612 for depositWithPermit).
    /// @param nodes_ The node registry.
    /// @param adapters_ The adapter registry.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (parameters).
    /// @param treasury_ Receives protocol fees.
    /// @param protocolFeeBps_ Protocol fee in basis points.
    /// @param contributorShareBps_ Contributor share in basis points; fee + share <= 10000.
    /// @param withdrawDelay_ Seconds between requestWithdraw and withdraw.
    constructor(
        IERC20 token_,
        INodeRegistry nodes_,
        IAdapterRegistry adapters_,
        address admin,
        address treasury_,
        uint16 protocolFeeBps_,
        uint16 contributorShareBps_,
        uint64 withdrawDelay_
    ) EIP712("OpenLoRA Escrow", "1") {
        if (
            address(token_) == address(0) || address(nodes_) == address(0) || address(adapters_) == address(0)
                || admin == address(0)
        ) revert ZeroAddress();
        token = token_;
        nodes = nodes_;
        adapters = adapters_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTreasury(treasury_);
        _setFees(protocolFeeBps_, contributorShareBps_);
        _setWithdrawDelay(withdrawDelay_);
    }

    // ---------------------------------------------------------------- payers

    /// @inheritdoc IInferenceEscrow
    function deposit(uint256 amount) external nonReentrant {
        _deposit(amount);
    }

    /// @inheritdoc IInferenceEscrow
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        // A front-runner may have spent the permit already; the allowance it set is then what counts.
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _deposit(amount);
    }

    /// @inheritdoc IInferenceEscrow
    function requestWithdraw(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = _balances[msg.sender];
        if (amount > balance) revert InsufficientBalance(amount, balance);
        uint64 availableAt = uint64(block.timestamp) + _params.withdrawDelay;
        _withdrawals[msg.sender] = Withdrawal({amount: SafeCast.toUint128(amount), availableAt: availableAt});
        emit WithdrawRequested(msg.sender, amount, availableAt);
    }

    /// @inheritdoc IInferenceEscrow
    function withdraw() external nonReentrant returns (uint256 amount) {
        Withdrawal memory w = _withdrawals[msg.sender];
        if (w.amount == 0) revert NoWithdrawalPending();
        if (block.timestamp < w.availableAt) revert WithdrawalNotReady(w.availableAt);
        uint256 balance = _balances[msg.sender];
        amount = w.amount < balance ? w.amount : balance;
        _balances[msg.sender] = balance - amount;
        delete _withdrawals[msg.sender];
        emit Withdrawn(msg.sender, amount);
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
        if (!nodes.isActive(msg.sender)) revert NotActiveNode(msg.sender);
        Params memory p = _params;

        uint256 feeTotal;
        uint256 shareTotal;
        uint256 count;
        bytes32 liveId; // last adapter found live in this batch: saves a registry call for runs of one adapter
        for (uint256 i; i < n; ++i) {
            Voucher calldata v = vouchers[i];
            (SkipReason reason, uint256 amount) = _check(v, signatures[i], liveId);
            if (reason != SkipReason.None) {
                emit VoucherSkipped(msg.sender, v.payer, v.adapterId, v.cumulativeAmount, reason);
                continue;
            }
            liveId = v.adapterId;
            _balances[v.payer] -= amount;
            _settled[_channel(v.payer, msg.sender, v.adapterId)] = v.cumulativeAmount;
            uint256 share = amount * p.contributorShareBps / TOTAL_BPS;
            if (share != 0) accrued[v.adapterId] += share;
            feeTotal += amount * p.protocolFeeBps / TOTAL_BPS;
            shareTotal += share;
            paid += amount;
            ++count;
            emit VoucherSettled(msg.sender, v.payer, v.adapterId, v.cumulativeAmount, amount);
        }

        emit BatchSettled(msg.sender, count, paid, feeTotal, shareTotal);
        if (feeTotal != 0) token.safeTransfer(p.treasury, feeTotal);
        uint256 toNode = paid - feeTotal - shareTotal;
        if (toNode != 0) token.safeTransfer(msg.sender, toNode);
    }

    /// @dev Validates one voucher for the caller; returns the growth to pay, or why it is skipped. No state change.
    function _check(Voucher calldata v, bytes calldata signature, bytes32 liveId)
        private
        view
        returns (SkipReason, uint256)
    {
        if (v.node != msg.sender) return (SkipReason.WrongNode, 0);
        if ((v.adapterId != liveId || liveId == bytes32(0)) && !adapters.isLive(v.adapterId)) {
            return (SkipReason.AdapterNotLive, 0);
        }
        uint256 done = _settled[_channel(v.payer, msg.sender, v.adapterId)];
        if (v.cumulativeAmount <= done) return (SkipReason.NotGrowing, 0);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(_hashVoucher(v), signature);
        if (err != ECDSA.RecoverError.NoError || signer != v.payer) return (SkipReason.BadSignature, 0);
        uint256 amount = v.cumulativeAmount - done;
        if (_balances[v.payer] < amount) return (SkipReason.InsufficientFunds, 0);
        return (SkipReason.None, amount);
    }

    // ---------------------------------------------------------------- contributors

    /// @inheritdoc IInferenceEscrow
    function claim(bytes32[] calldata adapterIds) external nonReentrant returns (uint256 amount) {
        for (uint256 i; i < adapterIds.length; ++i) {
            bytes32 id = adapterIds[i];
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
    function claimable(bytes32 adapterId, address contributor) external view returns (uint256) {
        uint256 due = _entitled(adapterId, contributor);
        uint256 done = claimed[adapterId][contributor];
        return due > done ? due - done : 0;
    }

    /// @dev floor(accrued * weight / 10000): non-decreasing in accrued, and summing to at most accrued.
    function _entitled(bytes32 adapterId, address contributor) private view returns (uint256) {
        uint256 weight = adapters.weightOf(adapterId, contributor);
        if (weight == 0) return 0;
        return accrued[adapterId] * weight / TOTAL_BPS;
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IInferenceEscrow
    function settled(address payer, address node, bytes32 adapterId) external view returns (uint256) {
        return _settled[_channel(payer, node, adapterId)];
    }

    /// @inheritdoc IInferenceEscrow
    function balanceOf(address payer) external view returns (uint256) {
        return _balances[payer];
    }

    /// @notice The pending withdrawal request of `payer` (zero amount when none).
    /// @param payer The payer.
    /// @return The request.
    function withdrawalOf(address payer) external view returns (Withdrawal memory) {
        return _withdrawals[payer];
    }

    /// @notice The EIP-712 digest a payer signs for `voucher` on this chain and this escrow.
    /// @param voucher The voucher.
    /// @return The typed-data digest.
    function hashVoucher(Voucher calldata voucher) external view returns (bytes32) {
        return _hashVoucher(voucher);
    }

    /// @notice The EIP-712 domain separator (name "OpenLoRA Escrow", version "1", chain id, this address).
    /// @return The domain separator.
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice Receives protocol fees.
    /// @return The treasury address.
    function treasury() external view returns (address) {
        return _params.treasury;
    }

    /// @notice Protocol fee in basis points of each settled amount.
    /// @return The fee.
    function protocolFeeBps() external view returns (uint16) {
        return _params.protocolFeeBps;
    }

    /// @notice Contributor share in basis points of each settled amount.
    /// @return The share.
    function contributorShareBps() external view returns (uint16) {
        return _params.contributorShareBps;
    }

    /// @notice Seconds a withdrawal request waits.
    /// @return The delay.
    function withdrawDelay() external view returns (uint64) {
        return _params.withdrawDelay;
    }

    // ---------------------------------------------------------------- admin

    /// @notice Set the protocol fee and contributor share (admin); their sum is at most 10000.
    /// @param protocolFeeBps_ Protocol fee in basis points.
    /// @param contributorShareBps_ Contributor share in basis points.
    function setFees(uint16 protocolFeeBps_, uint16 contributorShareBps_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setFees(protocolFeeBps_, contributorShareBps_);
    }

    /// @notice Set the treasury that receives protocol fees (admin).
    /// @param treasury_ New treasury, non-zero.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    /// @notice Set the withdrawal delay (admin); applies to later requests.
    /// @param delay New delay in seconds, at most MAX_WITHDRAW_DELAY.
    function setWithdrawDelay(uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setWithdrawDelay(delay);
    }

    // ---------------------------------------------------------------- internals

    function _deposit(uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = _balances[msg.sender] + amount;
        _balances[msg.sender] = balance;
        emit Deposited(msg.sender, amount, balance);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    function _hashVoucher(Voucher calldata v) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(VOUCHER_TYPEHASH, v.payer, v.node, v.adapterId, v.cumulativeAmount))
        );
    }

    function _channel(address payer, address node, bytes32 adapterId) private pure returns (bytes32) {
        return keccak256(abi.encode(payer, node, adapterId));
    }

    function _setFees(uint16 protocolFeeBps_, uint16 contributorShareBps_) private {
        if (uint256(protocolFeeBps_) + contributorShareBps_ > TOTAL_BPS) {
            revert FeesTooHigh(protocolFeeBps_, contributorShareBps_);
        }
        _params.protocolFeeBps = protocolFeeBps_;
        _params.contributorShareBps = contributorShareBps_;
        emit FeesSet(protocolFeeBps_, contributorShareBps_);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        _params.treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    function _setWithdrawDelay(uint64 delay) private {
        if (delay > MAX_WITHDRAW_DELAY) revert DelayTooLong(delay, MAX_WITHDRAW_DELAY);
        _params.withdrawDelay = delay;
        emit WithdrawDelaySet(delay);
    }
}
