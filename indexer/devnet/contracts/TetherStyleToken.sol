// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title TetherStyleToken: our own token with the Ethereum USDT (TetherToken) event profile.
/// @notice Written for the devnet and tests, modelled on USDT's ERC-20 as the Etherscan copies
///         declare it (see ../../../tests/fixtures/README.md and contracts/README.md):
///         - `issue(amount)` / `redeem(amount)` change the OWNER's balance and totalSupply and emit
///           only `Issue(uint)` / `Redeem(uint)`: NO Transfer event.
///         - `destroyBlackFunds(user)` zeroes a blacklisted balance and lowers totalSupply, emitting
///           only `DestroyedBlackFunds(address,uint)`: NO Transfer event.
///         - `addBlackList` / `removeBlackList` emit `AddedBlackList(address)` / `RemovedBlackList(address)`
///           (address not indexed). A blacklisted holder cannot send; it can still receive.
///         - `pause` / `unpause` emit `Pause()` / `Unpause()`; pause stops transfer/transferFrom only.
///         - `transferOwnership` emits NO event (as USDT's Ownable).
///         - `transfer` / `transferFrom` return nothing (USDT's ERC20Basic), and emit Transfer.
///         - The constructor credits `initialSupply` to the owner WITHOUT an event (as USDT's).
///         No transfer fee, no `deprecate` (USDT's fee is zero; its upgrade path is not modelled).
contract TetherStyleToken {
    string public name;
    string public symbol;
    uint256 public decimals;
    uint256 public totalSupply;
    address public owner;
    bool public paused;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public isBlackListed;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Issue(uint256 amount);
    event Redeem(uint256 amount);
    event AddedBlackList(address _user);
    event RemovedBlackList(address _user);
    event DestroyedBlackFunds(address _blackListedUser, uint256 _balance);
    event Pause();
    event Unpause();

    modifier onlyOwner() {
        require(msg.sender == owner, "not owner");
        _;
    }

    modifier whenNotPaused() {
        require(!paused, "paused");
        _;
    }

    constructor(uint256 initialSupply, string memory _name, string memory _symbol, uint256 _decimals) {
        owner = msg.sender;
        name = _name;
        symbol = _symbol;
        decimals = _decimals;
        totalSupply = initialSupply;
        balanceOf[msg.sender] = initialSupply;
    }

    // -- ERC-20 ------------------------------------------------------------------------------------

    function transfer(address _to, uint256 _value) public whenNotPaused {
        require(!isBlackListed[msg.sender], "blacklisted");
        _move(msg.sender, _to, _value);
    }

    function transferFrom(address _from, address _to, uint256 _value) public whenNotPaused {
        require(!isBlackListed[_from], "blacklisted");
        uint256 allowed = allowance[_from][msg.sender];
        require(allowed >= _value, "allowance");
        if (allowed != type(uint256).max) {
            allowance[_from][msg.sender] = allowed - _value;
        }
        _move(_from, _to, _value);
    }

    function approve(address _spender, uint256 _value) public {
        // USDT: to change a non-zero allowance, set it to zero first.
        require(!((_value != 0) && (allowance[msg.sender][_spender] != 0)), "reset allowance first");
        allowance[msg.sender][_spender] = _value;
        emit Approval(msg.sender, _spender, _value);
    }

    function _move(address _from, address _to, uint256 _value) internal {
        require(balanceOf[_from] >= _value, "balance");
        balanceOf[_from] -= _value;
        balanceOf[_to] += _value;
        emit Transfer(_from, _to, _value);
    }

    // -- supply (no Transfer events) ---------------------------------------------------------------

    function issue(uint256 amount) public onlyOwner {
        totalSupply += amount;
        balanceOf[owner] += amount;
        emit Issue(amount);
    }

    function redeem(uint256 amount) public onlyOwner {
        require(totalSupply >= amount, "supply");
        require(balanceOf[owner] >= amount, "balance");
        totalSupply -= amount;
        balanceOf[owner] -= amount;
        emit Redeem(amount);
    }

    // -- blacklist ---------------------------------------------------------------------------------

    function getBlackListStatus(address _maker) external view returns (bool) {
        return isBlackListed[_maker];
    }

    function addBlackList(address _evilUser) public onlyOwner {
        isBlackListed[_evilUser] = true;
        emit AddedBlackList(_evilUser);
    }

    function removeBlackList(address _clearedUser) public onlyOwner {
        isBlackListed[_clearedUser] = false;
        emit RemovedBlackList(_clearedUser);
    }

    function destroyBlackFunds(address _blackListedUser) public onlyOwner {
        require(isBlackListed[_blackListedUser], "not blacklisted");
        uint256 dirtyFunds = balanceOf[_blackListedUser];
        balanceOf[_blackListedUser] = 0;
        totalSupply -= dirtyFunds;
        emit DestroyedBlackFunds(_blackListedUser, dirtyFunds);
    }

    // -- pause, ownership --------------------------------------------------------------------------

    function pause() public onlyOwner {
        require(!paused, "paused");
        paused = true;
        emit Pause();
    }

    function unpause() public onlyOwner {
        require(paused, "not paused");
        paused = false;
        emit Unpause();
    }

    function transferOwnership(address newOwner) public onlyOwner {
        if (newOwner != address(0)) {
            owner = newOwner;
        }
    }
}
