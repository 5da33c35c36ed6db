// The client every chain read helper takes: any viem public client (http to a node, Hardhat's in-process provider).
import type { Chain, PublicClient, Transport } from "viem";

export type ReadClient = PublicClient<Transport, Chain | undefined>;
