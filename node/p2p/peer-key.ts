// The node's libp2p identity. It must survive restarts: peers, the NodeRegistry binding (stake(peerId, ...))
// and signed announcements all name the node by the peer id derived from this key.
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";

export const PEER_KEY_FILE = "peer.key";

/** Loads `dataDir`/peer.key (protobuf-encoded Ed25519 key), creating it on first start. */
export async function loadOrCreatePeerKey(dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, PEER_KEY_FILE);
  try {
    return privateKeyFromProtobuf(await readFile(file));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT")
      throw new Error(`${file}: not a libp2p private key (${(error as Error).message})`);
  }
  await mkdir(dataDir, { recursive: true });
  const key = await generateKeyPair("Ed25519");
  // Written whole or not at all, readable by the owner only: it is the node's identity.
  const partial = `${file}.${process.pid}.partial`;
  await writeFile(partial, privateKeyToProtobuf(key), { mode: 0o600 });
  await chmod(partial, 0o600);
  await rename(partial, file);
  return key;
}
