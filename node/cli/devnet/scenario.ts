// What the devnet plays, as data: who holds which key, the three demo adapters and their contributor splits, the
// three nodes (prices, which adapters each holds hot), how much everyone is funded with, and the paid requests.
// Keys are Hardhat's well-known development accounts (mnemonic "test ... junk"): public, for a local chain only.
import { parseEther, type HDAccount } from "viem";
import { mnemonicToAccount } from "viem/accounts";

export const DEV_MNEMONIC = "test test test test test test test test test test test junk";

export type Role = "deployer" | "registrant" | "contributor" | "payer" | "operator";

export interface CastMember {
  role: Role;
  name: string;
  account: HDAccount;
}

export interface AdapterPlan {
  /** Folder name under the model's adapters/ folder; also the alias the nodes serve it under. */
  name: string;
  /** Contributor names (of CONTRIBUTORS) and their attribution weights in basis points (sum 10000). */
  split: [contributor: string, weightBps: number][];
}

export interface NodePlan {
  name: string;
  /** Wei of OPEN per token (prompt and completion). */
  pricePerToken: bigint;
  /** Adapters imported and loaded into GPU slots at start; a node with none fetches from peers on request. */
  hot: string[];
}

export interface RequestPlan {
  payer: string;
  adapter: string;
  prompt: string;
  maxTokens: number;
  /** A node the payer picked by name; absent: routed to the best node announcing the adapter. */
  node?: string;
}

export const CONTRIBUTORS = ["alice", "bob", "carol", "dave"];
export const PAYERS = ["payer-1", "payer-2"];

/** Splits chosen so that one pool divides with a remainder: its dust (< contributors wei) stays in the escrow. */
export const ADAPTERS: AdapterPlan[] = [
  { name: "dragon", split: [["alice", 10_000]] },
  {
    name: "ocean",
    split: [
      ["alice", 6_000],
      ["bob", 4_000],
    ],
  },
  {
    name: "robot",
    split: [
      ["bob", 3_334],
      ["carol", 3_333],
      ["dave", 3_333],
    ],
  },
];

/** Prices are not round numbers of wei on purpose: pools then split with remainders, and the rounding shows. */
export const NODES: NodePlan[] = [
  { name: "node-1", pricePerToken: 2_000_000_000_007n, hot: ["dragon", "ocean"] },
  { name: "node-2", pricePerToken: 3_000_000_000_011n, hot: ["ocean", "robot"] },
  { name: "node-3", pricePerToken: 1_000_000_000_003n, hot: [] },
];

export const FUNDING = {
  payer: parseEther("1000"),
  operator: parseEther("1500"),
  stake: parseEther("1000"),
  /** Each payer deposits this much for each node. */
  deposit: parseEther("20"),
};

const PROMPTS: Record<string, string> = {
  dragon: "Once upon a time, a dragon",
  ocean: "One day, the sea",
  robot: "The little robot",
};

/**
 * Both payers ask for every adapter, routed (the best node announcing it); payer-2 also asks node-3 by name for
 * adapters it does not hold, so node-3 fetches them from a peer by content hash before serving.
 */
export function requestPlan(): RequestPlan[] {
  const plan: RequestPlan[] = [];
  for (const round of [0, 1]) {
    for (const payer of PAYERS) {
      for (const { name } of ADAPTERS) {
        plan.push({ payer, adapter: name, prompt: PROMPTS[name], maxTokens: 32 + 8 * round });
      }
    }
  }
  plan.push({ payer: "payer-2", adapter: "dragon", prompt: PROMPTS.dragon, maxTokens: 40, node: "node-3" });
  plan.push({ payer: "payer-2", adapter: "robot", prompt: PROMPTS.robot, maxTokens: 40, node: "node-3" });
  plan.push({ payer: "payer-1", adapter: "robot", prompt: "Tim and the robot", maxTokens: 40, node: "node-3" });
  return plan;
}

/** Everyone, with a key derived from the development mnemonic (fixed indices, so addresses are stable). */
export function cast(): CastMember[] {
  const names: [Role, string][] = [
    ["deployer", "deployer"],
    ["registrant", "registrant"],
    ...CONTRIBUTORS.map((n): [Role, string] => ["contributor", n]),
    ...PAYERS.map((n): [Role, string] => ["payer", n]),
    ...NODES.map((n): [Role, string] => ["operator", n.name]),
  ];
  return names.map(([role, name], addressIndex) => ({
    role,
    name,
    account: mnemonicToAccount(DEV_MNEMONIC, { addressIndex }),
  }));
}
