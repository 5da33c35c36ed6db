// gossipsub peer scoring for the announcement topic. What counts against a peer: relaying announcements our
// validator rejects (P4, "invalid deliveries": bad signatures, someone else's peer id, oversize, flooding by the
// author itself) and being banned by this node (app-specific score: it served bad adapter bytes). A peer whose
// score falls under the graylist threshold is ignored altogether.
// Mesh delivery quotas (P3) stay off: announcements come every few seconds per node, so a quiet but honest mesh
// peer would be punished for a low rate that is normal here.
import type { PeerScoreParams, PeerScoreThresholds, TopicScoreParams } from "@libp2p/gossipsub/score";
import { ANNOUNCE_TOPIC } from "./announcement.ts";

export const BANNED_SCORE = -100;

export const announceTopicScore: Partial<TopicScoreParams> = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1_000,
  timeInMeshCap: 300,
  firstMessageDeliveriesWeight: 0.5,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 20,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  // Squared: one invalid delivery costs 20, three put the peer under the graylist threshold (-80).
  invalidMessageDeliveriesWeight: -20,
  invalidMessageDeliveriesDecay: 0.9,
};

export interface ScoringOptions {
  /** True for peers this node has banned. */
  isBanned: (peerId: string) => boolean;
  /**
   * IPs exempt from the many-peers-on-one-IP penalty. Local test networks and benchmarks run every node on
   * 127.0.0.1; a real network keeps the penalty (Sybils tend to share addresses).
   */
  colocationWhitelist?: string[];
}

export function scoreParams(options: ScoringOptions): Partial<PeerScoreParams> {
  return {
    topics: { [ANNOUNCE_TOPIC]: announceTopicScore as TopicScoreParams },
    appSpecificScore: (peerId: string) => (options.isBanned(peerId) ? BANNED_SCORE : 0),
    appSpecificWeight: 1,
    IPColocationFactorWhitelist: new Set(options.colocationWhitelist ?? []),
  };
}

export const scoreThresholds: Partial<PeerScoreThresholds> = {
  gossipThreshold: -10,
  publishThreshold: -50,
  graylistThreshold: -80,
};
