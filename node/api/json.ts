// JSON text of a payload that may hold bigint values (wei), written as decimal strings. Most payloads hold none:
// they take JSON.stringify's fast path, and only one that throws on a bigint is written again with a replacer
// (a replacer function makes every call several times slower).
export function toJson(payload: unknown): string {
  try {
    return JSON.stringify(payload);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return JSON.stringify(payload, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  }
}
