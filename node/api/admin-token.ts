// The admin token: given by the operator, or made once and kept in the data folder (mode 0600), so that it
// survives restarts and only the operator's user can read it.
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const ADMIN_TOKEN_FILE = "admin-token";

/** The token and where it came from ("given", or the file it is kept in). */
export async function loadOrCreateAdminToken(
  dataDir: string,
  given?: string,
): Promise<{ token: string; source: string }> {
  if (given !== undefined) {
    if (given.length < 16) throw new RangeError("the admin token must be at least 16 characters");
    return { token: given, source: "given" };
  }
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    const token = (await readFile(file, "utf8")).trim();
    if (token.length >= 16) return { token, source: file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const token = randomBytes(24).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return { token, source: file };
}
