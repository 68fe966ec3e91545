// Benchmark peer: index the bench chain's TestToken Transfer events (same chain, same blocks as
// usd1-indexer). Driven by bench/peers.py through environment variables.
import { createConfig } from "ponder";
import { http } from "viem";

const TokenAbi = [
  {
    type: "event",
    name: "Transfer",
    inputs: [
      { indexed: true, name: "from", type: "address" },
      { indexed: true, name: "to", type: "address" },
      { indexed: false, name: "value", type: "uint256" },
    ],
  },
] as const;

const databaseUrl = process.env.DATABASE_URL;

export default createConfig({
  database: databaseUrl
    ? { kind: "postgres", connectionString: databaseUrl }
    : { kind: "pglite", directory: process.env.PONDER_PGLITE_DIR ?? ".ponder/pglite" },
  networks: {
    anvil: {
      chainId: 31337,
      transport: http(process.env.PONDER_RPC_URL ?? "http://127.0.0.1:8545"),
      // The default (50/s) throttles a local node; the bench node answers as fast as it can.
      // Behind the provider proxy (bench/provider.py) it is set to the proxy's limit.
      maxRequestsPerSecond: Number(process.env.PONDER_MAX_RPS ?? "10000"),
      pollingInterval: 1_000,
    },
  },
  contracts: {
    Token: {
      network: "anvil",
      abi: TokenAbi,
      address: (process.env.PONDER_TOKEN ?? "0x5FbDB2315678afecb367f032d93F642f64180aa3") as `0x${string}`,
      startBlock: 0,
      endBlock: Number(process.env.PONDER_END_BLOCK ?? "0"),
    },
  },
});
