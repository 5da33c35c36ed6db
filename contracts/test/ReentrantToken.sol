// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title ReentrantToken
/// @notice TEST ONLY. An ERC-20 whose transfers call back into a target once armed, to prove the escrow and the
/// node registry refuse reentry. A failed reentry bubbles its revert data up.
contract ReentrantToken is ERC20, ERC20Permit {
    address private _target;
    bytes private _payload;

    /// @param holder Receives the supply.
    /// @param supply Total supply.
    constructor(address holder, uint256 supply) ERC20("Reentrant", "REE") ERC20Permit("Reentrant") {
        _mint(holder, supply);
    }

    /// @notice Arm a single callback into `target` with `payload` on the next transfer.
    /// @param target Contract to call.
    /// @param payload Calldata.
    function arm(address target, bytes calldata payload) external {
        _target = target;
        _payload = payload;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address target = _target;
        if (target != address(0)) {
            _target = address(0);
            (bool ok, bytes memory ret) = target.call(_payload);
            if (!ok) {
                assembly {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
    }
}
