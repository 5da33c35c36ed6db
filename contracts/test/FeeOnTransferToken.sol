// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice TEST ONLY. An ERC-20 that burns 1% of every transfer between two holders, so the receiver gets 99%:
/// proves the escrow and the node registry credit what they received, not what was asked.
contract FeeOnTransferToken is ERC20 {
    /// @notice The fee in basis points of each transfer.
    uint256 public constant FEE_BPS = 100;

    /// @param holder Receives the supply.
    /// @param supply Total supply.
    constructor(address holder, uint256 supply) ERC20("Fee on transfer", "FOT") {
        _mint(holder, supply);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value * FEE_BPS / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
