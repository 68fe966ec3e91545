// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.0;

import "./Stablecoin.sol";

/// @title DevnetStablecoinV2: the upgrade target of the devnet's USD1 proxy. Ours, not USD1's, and
///        unrelated to any real USD1 V2.
/// @notice The real Stablecoin unchanged (same storage layout, inherited) plus one new function, so
///         a test can tell from a call which implementation the proxy runs.
contract DevnetStablecoinV2 is Stablecoin {
    function version() external pure returns (uint256) {
        return 2;
    }
}
