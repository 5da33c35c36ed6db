// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title BalanceReader
/// @notice TEST ONLY. Reads many token balances in one call, so the invariant test can check every holder's
/// balance after every transaction without one round trip per address.
contract BalanceReader {
    /// @notice The balance of each of `holders` in `token`, same order.
    /// @param token The token.
    /// @param holders The addresses.
    /// @return balances Their balances.
    function balancesOf(IERC20 token, address[] calldata holders) external view returns (uint256[] memory balances) {
        balances = new uint256[](holders.length);
        for (uint256 i; i < holders.length; ++i) balances[i] = token.balanceOf(holders[i]);
    }
}
