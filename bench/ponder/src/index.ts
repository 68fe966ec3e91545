import { ponder } from "ponder:registry";
import { account, transferEvent } from "ponder:schema";

const ZERO = "0x0000000000000000000000000000000000000000";

ponder.on("Token:Transfer", async ({ event, context }) => {
  const { from, to, value } = event.args;
  await context.db.insert(transferEvent).values({
    id: event.id,
    blockNumber: event.block.number,
    txHash: event.transaction.hash,
    from,
    to,
    amount: value,
    timestamp: event.block.timestamp,
  });
  if (from !== ZERO) {
    await context.db
      .insert(account)
      .values({ address: from, balance: -value })
      .onConflictDoUpdate((row) => ({ balance: row.balance - value }));
  }
  if (to !== ZERO) {
    await context.db
      .insert(account)
      .values({ address: to, balance: value })
      .onConflictDoUpdate((row) => ({ balance: row.balance + value }));
  }
});
