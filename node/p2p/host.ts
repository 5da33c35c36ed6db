// The libp2p host: one node with tcp, noise, yamux, identify, ping, gossipsub and bootstrap, a persistent
// identity, and an explicit start/stop (a forgotten libp2p node keeps the process alive). Everything else in
// node/p2p talks to the network through this class.
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { bootstrap } from "@libp2p/bootstrap";
import { gossipsub, type GossipSub, type GossipsubOpts } from "@libp2p/gossipsub";
import { identify, type Identify } from "@libp2p/identify";
import type {
  AbortOptions,
  DialProtocolOptions,
  PeerId,
  PrivateKey,
  Stream,
  StreamHandler,
  StreamHandlerOptions,
} from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { ping, type Ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import { createLibp2p, type Libp2p } from "libp2p";
import { loadOrCreatePeerKey } from "./peer-key.ts";

export type HostServices = { identify: Identify; ping: Ping; pubsub: GossipSub };
export type Libp2pNode = Libp2p<HostServices>;

export interface HostOptions {
  /** The node's data folder: holds peer.key. */
  dataDir: string;
  /** Listen addresses. Default: 127.0.0.1 on a free port. */
  listen?: string[];
  /** Addresses to announce instead of the listen addresses (NAT, public IP). */
  announce?: string[];
  /** Bootstrap peers, multiaddrs ending in /p2p/<peer id>. */
  bootstrap?: string[];
  /** Extra gossipsub options (peer scoring, validators are set by the announcement layer). */
  gossip?: Partial<GossipsubOpts>;
  /** Use this key instead of the one in dataDir (tests, benchmarks). */
  privateKey?: PrivateKey;
}

/** The address book entry of a remote peer: what announcements carry and dials need. */
export interface PeerAddress {
  peerId: string;
  multiaddrs: readonly string[];
}

/** Streams a peer may open on a connection before the first is acknowledged (yamux). */
export const MAX_EARLY_STREAMS = 64;

export class P2pHost {
  readonly node: Libp2pNode;
  readonly peerId: PeerId;
  #started = false;
  #stopped = false;

  private constructor(node: Libp2pNode) {
    this.node = node;
    this.peerId = node.peerId;
  }

  /** Builds the node (not yet listening): call start(). */
  static async create(options: HostOptions): Promise<P2pHost> {
    const privateKey = options.privateKey ?? (await loadOrCreatePeerKey(options.dataDir));
    const node = await createLibp2p<HostServices>({
      privateKey,
      start: false,
      addresses: { listen: options.listen ?? ["/ip4/127.0.0.1/tcp/0"], announce: options.announce },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      // yamux resets streams a peer opens beyond maxEarlyStreams (default 10) before the first is acknowledged:
      // a client's burst of 32 requests on a fresh connection lost them all. Room for the per-protocol stream
      // limits (infer: 32 per connection), which bound the work a connection may ask for.
      streamMuxers: [yamux({ maxEarlyStreams: MAX_EARLY_STREAMS })],
      // Bootstrap dials its list shortly after start; 10 ms instead of its 1 s default so a node joins at once.
      peerDiscovery: options.bootstrap?.length ? [bootstrap({ list: options.bootstrap, timeout: 10 })] : [],
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          // A lone node (first of a network) still announces; with nobody subscribed the publish is a no-op.
          allowPublishToZeroTopicPeers: true,
          // Gossip is bounded before our own size checks run: no RPC over 1 MiB is even decoded.
          maxInboundDataLength: 1 << 20,
          ...options.gossip,
        }),
      },
    });
    return new P2pHost(node);
  }

  get pubsub(): GossipSub {
    return this.node.services.pubsub;
  }

  get started(): boolean {
    return this.#started && !this.#stopped;
  }

  async start(): Promise<void> {
    if (this.#stopped) throw new Error("p2p host was stopped; create a new one");
    if (this.#started) return;
    this.#started = true;
    await this.node.start();
  }

  /** Stops listening and closes every connection. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#started) await this.node.stop();
  }

  /** Our listen addresses without the /p2p/<id> suffix (what announcements carry). */
  multiaddrs(): string[] {
    return this.node.getMultiaddrs().map((ma) => withoutPeerId(ma).toString());
  }

  /** Full dialable addresses, /p2p/<id> included (what bootstrap lists take). */
  dialAddrs(): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString());
  }

  async handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void> {
    await this.node.handle(protocol, handler, options);
  }

  /** Connects to a peer by full multiaddr (with /p2p/<id>). */
  async connect(address: string, options?: AbortOptions): Promise<void> {
    await this.node.dial(multiaddr(address), options);
  }

  /**
   * Opens a protocol stream to a peer known from an announcement: its addresses go into the peer store first,
   * so a peer that is not a gossip neighbour can be dialled too.
   */
  async openStream(peer: PeerAddress, protocol: string, options?: DialProtocolOptions): Promise<Stream> {
    const id = peerIdFromString(peer.peerId);
    // Connected already: a new stream on the open connection (the peer store write costs ~0.5 ms per call).
    if (this.node.getConnections(id).some((c) => c.status === "open"))
      return this.node.dialProtocol(id, protocol, options);
    const addrs = peer.multiaddrs.flatMap((a) => {
      try {
        return [withoutPeerId(multiaddr(a))];
      } catch {
        return []; // a malformed address from a peer is skipped, not fatal
      }
    });
    if (addrs.length > 0) await this.node.peerStore.merge(id, { multiaddrs: addrs }, options);
    return this.node.dialProtocol(id, protocol, options);
  }

  async publish(topic: string, data: Uint8Array): Promise<number> {
    const result = await this.pubsub.publish(topic, data);
    return result.recipients.length;
  }

  /** Peers with an open connection. */
  connectedPeers(): string[] {
    return [...new Set(this.node.getConnections().map((c) => c.remotePeer.toString()))];
  }
}

/** The address without a trailing /p2p/<id>. */
export function withoutPeerId(ma: Multiaddr): Multiaddr {
  return ma.getComponents().some((c) => c.name === "p2p") ? ma.decapsulateCode(421) : ma;
}
