"""usd1-indexer: multi-chain supply, finality, peg and liquidity monitor for USD1."""

__version__ = "0.1.0"
