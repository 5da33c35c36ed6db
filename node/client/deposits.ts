// The payer's deposits in InferenceEscrow: one per node (only that node's vouchers draw on it). Deposit
// (approving the tokens first), request a withdrawal, execute it once it matured and before it lapses, or cancel
// it. Each checks what the contract would refuse first and says so with the amounts and times involved.
import { formatUnits, getAddress, type Address } from "viem";
import {
  getContracts,
  readDeposit,
  type ChainClients,
  type DepositView,
  type Deployment,
  type ReadClient,
} from "../chain/index.ts";
import { inferenceEscrowAbi } from "../chain/generated/abi.ts";
import { ChainActionError, sendTx, type TxSummary } from "./transactions.ts";

export interface DepositOutcome {
  transactions: TxSummary[];
  node: Address;
  deposit: DepositView;
  /** The payer's token balance after. */
  balance: bigint;
}

const open = (wei: bigint): string => `${formatUnits(wei, 18)} OPEN`;

function contractsOf(clients: ChainClients, deployment: Deployment) {
  return getContracts(clients, deployment.contracts);
}

async function outcome(
  clients: ChainClients,
  deployment: Deployment,
  node: Address,
  transactions: TxSummary[],
): Promise<DepositOutcome> {
  const payer = clients.wallet.account.address;
  const [deposit, balance] = await Promise.all([
    readDeposit(clients.public, deployment.contracts.InferenceEscrow, payer, node),
    contractsOf(clients, deployment).token.read.balanceOf([payer]),
  ]);
  return { transactions, node, deposit, balance };
}

/** Deposits `amount` wei of OPEN for `node`, approving the escrow first when the allowance is short. */
export async function depositFor(
  clients: ChainClients,
  deployment: Deployment,
  node: Address,
  amount: bigint,
): Promise<DepositOutcome> {
  if (amount <= 0n) throw new ChainActionError("invalid_amount", "the amount to deposit must be above 0");
  const c = contractsOf(clients, deployment);
  const payer = clients.wallet.account.address;
  const escrow = deployment.contracts.InferenceEscrow;
  const balance = await c.token.read.balanceOf([payer]);
  if (balance < amount) {
    throw new ChainActionError(
      "insufficient_balance",
      `${payer} holds ${open(balance)}, less than the ${open(amount)} to deposit`,
    );
  }
  const txs: TxSummary[] = [];
  if ((await c.token.read.allowance([payer, escrow])) < amount) {
    txs.push(
      await sendTx(clients, "approve", {
        simulate: () => c.token.simulate.approve([escrow, amount], { account: clients.wallet.account.address }),
        write: () =>
          c.token.write.approve([escrow, amount], { account: clients.wallet.account, chain: clients.wallet.chain }),
      }),
    );
  }
  txs.push(
    await sendTx(clients, "deposit", {
      simulate: () => c.escrow.simulate.deposit([node, amount], { account: clients.wallet.account.address }),
      write: () =>
        c.escrow.write.deposit([node, amount], { account: clients.wallet.account, chain: clients.wallet.chain }),
    }),
  );
  return outcome(clients, deployment, node, txs);
}

/** Asks to withdraw `amount` (default: the whole deposit) for `node`; it matures after the withdrawal delay. */
export async function requestWithdrawal(
  clients: ChainClients,
  deployment: Deployment,
  node: Address,
  amount?: bigint,
): Promise<DepositOutcome> {
  const c = contractsOf(clients, deployment);
  const payer = clients.wallet.account.address;
  const before = await readDeposit(clients.public, deployment.contracts.InferenceEscrow, payer, node);
  const wanted = amount ?? before.balance;
  if (wanted === 0n) throw new ChainActionError("insufficient_deposit", `${payer} has no deposit for node ${node}`);
  if (wanted > before.balance) {
    throw new ChainActionError(
      "insufficient_deposit",
      `cannot withdraw ${open(wanted)}: the deposit for node ${node} is ${open(before.balance)}`,
    );
  }
  const tx = await sendTx(clients, "requestWithdraw", {
    simulate: () => c.escrow.simulate.requestWithdraw([node, wanted], { account: clients.wallet.account.address }),
    write: () =>
      c.escrow.write.requestWithdraw([node, wanted], { account: clients.wallet.account, chain: clients.wallet.chain }),
  });
  return outcome(clients, deployment, node, [tx]);
}

/** Executes the matured withdrawal request for `node`. */
export async function executeWithdrawal(
  clients: ChainClients,
  deployment: Deployment,
  node: Address,
): Promise<DepositOutcome> {
  const c = contractsOf(clients, deployment);
  const payer = clients.wallet.account.address;
  const before = await readDeposit(clients.public, deployment.contracts.InferenceEscrow, payer, node);
  const w = before.withdrawal;
  if (w === null) {
    throw new ChainActionError(
      "no_withdrawal",
      `no withdrawal is pending for node ${node}`,
      "request one first: openlora withdraw --node <address>",
    );
  }
  const now = (await clients.public.getBlock()).timestamp;
  if (now < w.availableAt) {
    throw new ChainActionError(
      "withdrawal_not_ready",
      `the withdrawal of ${open(w.amount)} matures at ${iso(w.availableAt)} (the chain's time is ${iso(now)})`,
    );
  }
  if (now >= w.expiresAt) {
    throw new ChainActionError(
      "withdrawal_lapsed",
      `the withdrawal of ${open(w.amount)} lapsed at ${iso(w.expiresAt)}`,
      "request it again: openlora withdraw --node <address>",
    );
  }
  const tx = await sendTx(clients, "withdraw", {
    simulate: () => c.escrow.simulate.withdraw([node], { account: clients.wallet.account.address }),
    write: () => c.escrow.write.withdraw([node], { account: clients.wallet.account, chain: clients.wallet.chain }),
  });
  return outcome(clients, deployment, node, [tx]);
}

/** Cancels the pending withdrawal request for `node`. */
export async function cancelWithdrawal(
  clients: ChainClients,
  deployment: Deployment,
  node: Address,
): Promise<DepositOutcome> {
  const c = contractsOf(clients, deployment);
  const tx = await sendTx(clients, "cancelWithdraw", {
    simulate: () => c.escrow.simulate.cancelWithdraw([node], { account: clients.wallet.account.address }),
    write: () =>
      c.escrow.write.cancelWithdraw([node], { account: clients.wallet.account, chain: clients.wallet.chain }),
  });
  return outcome(clients, deployment, node, [tx]);
}

/** Every node the payer ever deposited for (Deposited events since the deployment), with the deposit now. */
export async function depositsOf(
  client: ReadClient,
  deployment: Deployment,
  payer: Address,
): Promise<(DepositView & { node: Address })[]> {
  const escrow = deployment.contracts.InferenceEscrow;
  const logs = await client.getContractEvents({
    address: escrow,
    abi: inferenceEscrowAbi,
    eventName: "Deposited",
    args: { payer },
    fromBlock: BigInt(deployment.blockNumber),
    strict: true,
  });
  const nodes = [...new Set(logs.map((l) => getAddress(l.args.node)))];
  return Promise.all(nodes.map(async (node) => ({ node, ...(await readDeposit(client, escrow, payer, node)) })));
}

function iso(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString();
}
