// A second process writing the payer's state file (test/client/units.test.ts): `count` spending records.
import type { Address, Hex } from "viem";
import { PayerState, type PayerStateScope } from "../../node/client/payer-state.ts";

const [dir, scope, count] = process.argv.slice(2);
const state = new PayerState(dir, JSON.parse(scope) as PayerStateScope);
const node = `0x${"34".repeat(20)}` as Address;
const listing = `0x${"aa".repeat(32)}` as Hex;
await Promise.all(Array.from({ length: Number(count) }, () => state.noteUnreceipted(node, listing, 1n)));
