/**
 * Where the two LBs talk to each other: VRRP adverts and conntrackd's sync. By default on the cluster network,
 * where any host on the same L2 could forge the peer's address; on the spec's syncNetwork when it has one, a link
 * only the two LBs are on (README: "What a host on the cluster network can and cannot do").
 */
import type { HostFacts, ResolvedSpec } from "../spec/types";
import { ownAndPeer } from "./common";

export interface PeerLink {
  interface: string;
  own: string;
  peer: string;
  /** true: the syncNetwork's own NIC; false: the private NIC, shared with the cluster. */
  dedicated: boolean;
}

export function peerLink(spec: ResolvedSpec, host: HostFacts): PeerLink {
  const sync = spec.syncNetwork;
  if (sync && !host.syncInterface) {
    throw new Error(
      "syncInterface: is required in the host facts when the spec has a syncNetwork (the NIC on that link)",
    );
  }
  const { own, peer } = ownAndPeer(sync ? sync.lbAddresses : spec.network.lbAddresses, host);
  const iface = sync && host.syncInterface ? host.syncInterface.name : host.privateInterface.name;
  return { interface: iface, own, peer, dedicated: sync !== undefined };
}
