// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title OpenToken
/// @notice The local stand-in for OPEN: a plain ERC-20 with ERC-2612 permit and a fixed supply minted at deployment.
/// @dev No mint or burn after construction, so the total supply is a conserved quantity the tests check.
contract OpenToken is ERC20, ERC20Permit {
    /// @param holder Receives the whole supply (the deployer on a local network).
    /// @param supply Total supply in wei (18 decimals).
    constructor(address holder, uint256 supply) ERC20("OpenLoRA Token", "OPEN") ERC20Permit("OpenLoRA Token") {
        _mint(holder, supply);
    }
}
