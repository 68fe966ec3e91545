// SPDX-License-Identifier: MIT
// Pays Uniswap V3 mint and swap callbacks from its own token balances (test helper: fund it first).
pragma solidity 0.8.28;

interface IV3Pool {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes calldata data)
        external
        returns (uint256 amount0, uint256 amount1);
    function swap(
        address recipient,
        bool zeroForOne,
        int256 amountSpecified,
        uint160 sqrtPriceLimitX96,
        bytes calldata data
    ) external returns (int256 amount0, int256 amount1);
}

interface IERC20Transfer {
    function transfer(address to, uint256 value) external returns (bool);
}

contract V3Helper {
    function mint(address pool, int24 tickLower, int24 tickUpper, uint128 amount)
        external
        returns (uint256 amount0, uint256 amount1)
    {
        return IV3Pool(pool).mint(address(this), tickLower, tickUpper, amount, abi.encode(pool));
    }

    function swap(address pool, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96)
        external
        returns (int256 amount0, int256 amount1)
    {
        return IV3Pool(pool).swap(address(this), zeroForOne, amountSpecified, sqrtPriceLimitX96, abi.encode(pool));
    }

    function uniswapV3MintCallback(uint256 owed0, uint256 owed1, bytes calldata data) external {
        _pay(owed0, owed1, data);
    }

    function uniswapV3SwapCallback(int256 delta0, int256 delta1, bytes calldata data) external {
        _pay(delta0 > 0 ? uint256(delta0) : 0, delta1 > 0 ? uint256(delta1) : 0, data);
    }

    function _pay(uint256 owed0, uint256 owed1, bytes calldata data) internal {
        address pool = abi.decode(data, (address));
        require(msg.sender == pool, "caller");
        if (owed0 > 0) require(IERC20Transfer(IV3Pool(pool).token0()).transfer(pool, owed0), "pay0");
        if (owed1 > 0) require(IERC20Transfer(IV3Pool(pool).token1()).transfer(pool, owed1), "pay1");
    }
}
