/** The whole host firewall: firewalld's zones and policy, plus our own egress SNAT table. */
import { renderFirewalld } from "./firewalld";
import { renderNatNftables } from "./nat-nftables";
import type { Renderer } from "./types";

export const renderFirewall: Renderer = (input) => [...renderFirewalld(input), ...renderNatNftables(input)];
