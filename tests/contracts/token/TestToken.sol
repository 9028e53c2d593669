// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// A USDC-like token for the chain ingestion tests: OpenZeppelin's ERC-20 with 6 decimals,
/// the whole supply minted to the deployer.
contract TestToken is ERC20 {
    constructor(uint256 supply) ERC20("Test USD Coin", "tUSDC") {
        _mint(msg.sender, supply);
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
