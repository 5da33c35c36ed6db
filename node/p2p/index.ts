// node/p2p: the peer network. libp2p host, signed adapter announcements and the verified peer table, adapter
// fetch by content hash, inference over libp2p streams, routing. Imports engine and chain, never api/client/cli.
export {
  P2pHost,
  withoutPeerId,
  type HostOptions,
  type HostServices,
  type Libp2pNode,
  type PeerAddress,
} from "./host.ts";
export { loadOrCreatePeerKey, PEER_KEY_FILE } from "./peer-key.ts";
export {
  ANNOUNCE_TOPIC,
  ANNOUNCEMENT_VERSION,
  AnnouncementFormatError,
  AnnouncementVersionError,
  DEFAULT_ANNOUNCEMENT_LIMITS,
  TIERS,
  decodeAnnouncement,
  encodeAnnouncement,
  selectAdapters,
  type AdapterAvailability,
  type AnnouncedAdapter,
  type Announcement,
  type AnnouncementBody,
  type AnnouncementLimits,
  type Tier,
} from "./announcement.ts";
export {
  ANNOUNCEMENT_DOMAIN_NAME,
  ANNOUNCEMENT_DOMAIN_VERSION,
  announcementDomain,
  announcementTypedData,
  announcementTypes,
  hashAnnouncement,
  recoverAnnouncementSigner,
  signAnnouncement,
  signerAddress,
  type AnnouncementDomain,
  type AnnouncementSigner,
} from "./announcement-sig.ts";
export {
  RegistryStakeOracle,
  peerIdBytesHex,
  type RegistryStakeOracleOptions,
  type StakeOracle,
  type StakeStatus,
} from "./stake-oracle.ts";
export { TokenBuckets, type RateLimit } from "./rate-limiter.ts";
export {
  DROP_REASONS,
  PeerTable,
  type DropEvent,
  type DropReason,
  type PeerEntry,
  type PeerTableEvents,
  type PeerTableOptions,
  type RemoveReason,
} from "./peer-table.ts";
export { AnnouncementValidator, type AnnouncementValidatorOptions, type Verdict } from "./announce-validator.ts";
export { TableKeeper, type TableKeeperOptions } from "./table-keeper.ts";
export { Announcer, type AnnouncerEvents, type AnnouncerOptions, type NodeState } from "./announcer.ts";
export {
  BANNED_SCORE,
  announceTopicScore,
  scoreParams,
  scoreThresholds,
  type ScoringOptions,
} from "./gossip-scoring.ts";
export {
  deadline,
  frames,
  ProtocolError,
  readFrame,
  readFrameList,
  readJson,
  writeJson,
  type FrameList,
  type FrameStream,
} from "./frames.ts";
export {
  ADAPTER_PROTOCOL,
  FetchError,
  fetchAdapterFrom,
  serveAdapters,
  type AdapterBytesSource,
  type FetchErrorCode,
  type FetchOptions,
  type ServeAdaptersOptions,
  type AdapterServer,
} from "./adapter-protocol.ts";
export {
  ChainAdapterRegistry,
  type AdapterRegistryView,
  type ChainAdapterRegistryOptions,
  type ListingView,
} from "./adapter-registry.ts";
export { ServedListings, type ServedListingsOptions } from "./served-listings.ts";
export {
  AdapterFetcher,
  AdapterUnavailableError,
  canonicalSizeLimit,
  type AdapterFetcherEvents,
  type AdapterFetcherOptions,
  type AdapterSink,
  type AdapterUnavailableReason,
  type FetchedAdapter,
} from "./adapter-fetcher.ts";
export {
  INFER_PROTOCOL,
  InferError,
  MAX_REQUEST_FRAME,
  MAX_RESPONSE_FRAME,
  parseRequestFrame,
  parseResponseFrame,
  type InferErrorCode,
  type InferEvent,
  type InferRequest,
  type ResponseFrame,
} from "./infer-frames.ts";
export {
  serveInference,
  type InferContext,
  type InferenceService,
  type ServeInferenceOptions,
} from "./infer-server.ts";
export { infer, inferStream, type InferOptions, type InferResult } from "./infer-client.ts";
export {
  NoRouteError,
  compareCandidates,
  rankCandidates,
  withFailover,
  type Attempt,
  type Candidate,
} from "./routing.ts";
export { engineAdapterSink, engineAdapterSource, engineNodeState } from "./engine-bridge.ts";
export { PeerNode, type PeerNodeOptions, type PeerNodeTimings } from "./peer-node.ts";
