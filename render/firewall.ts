/** The whole host firewall: firewalld's zones and policy, our own egress SNAT table and the metadata guard. */
import { renderFirewalld } from "./firewalld";
import { renderGuard } from "./guard";
import { renderNatNftables } from "./nat-nftables";
import type { Renderer } from "./types";

export const renderFirewall: Renderer = (input) => [
  ...renderFirewalld(input),
  ...renderNatNftables(input),
  ...renderGuard(input),
];
