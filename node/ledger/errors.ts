import { OpenLoraError } from "../engine/errors.ts";

/**
 * A ledger call the node got wrong: a malformed record, a state transition that is not allowed (confirming a
 * failed batch), a call on a closed ledger, or a database that cannot be opened. Only the node itself writes
 * the ledger, so blame is "node".
 */
export class LedgerError extends OpenLoraError {
  override name = "LedgerError";
  constructor(code: "ledger_invalid" | "ledger_conflict" | "ledger_closed" | "ledger_open", message: string) {
    super(code, `ledger: ${message}`, { blame: "node" });
  }
}
