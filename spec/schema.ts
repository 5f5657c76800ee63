/**
 * The LoadBalancer spec as users write it (DESIGN.md: field names are a contract; extend, don't rename).
 * Structure and per-field rules live here; rules that relate fields to each other live in semantics.ts, so that
 * every problem is reported at once.
 */
import { z } from "zod";
import { canonical, notUnicast, parseCidr, parseHostAddress } from "./address";
import { DIGEST_PINNED_REF, DIGEST_PINNED_RULE } from "./image-ref";

const hostAddress = z
  .string()
  .max(64)
  .superRefine((v, ctx) => {
    const r = parseHostAddress(v);
    if (!r.ok) ctx.addIssue({ code: "custom", message: r.rule });
    else if (notUnicast(r.ip))
      ctx.addIssue({ code: "custom", message: `must be a unicast address: ${canonical(r.ip)} is ${notUnicast(r.ip)}` });
  });

/** The widest network a cluster or public network may be: a /8 (IPv4) or a /48 (IPv6) already holds millions. */
const WIDEST = { ipv4: 8, ipv6: 48 } as const;

const cidr = z
  .string()
  .max(64)
  .superRefine((v, ctx) => {
    const r = parseCidr(v);
    if (!r.ok) return ctx.addIssue({ code: "custom", message: r.rule });
    const kind = r.cidr.network.kind() as keyof typeof WIDEST;
    const special = notUnicast(r.cidr.network);
    if (r.cidr.prefixLength < WIDEST[kind])
      ctx.addIssue({ code: "custom", message: `must be /${WIDEST[kind]} or narrower, not /${r.cidr.prefixLength}` });
    else if (special) ctx.addIssue({ code: "custom", message: `must be a unicast network: ${v} is ${special}` });
  });

const port = z.number().int().min(1).max(65535);

const labelSelector = z.strictObject({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: z.string().min(1),
        operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

const virtualAddress = z.strictObject({
  address: hostAddress,
  type: z.enum(["private", "public"]),
});

const network = z.strictObject({
  cidr,
  gateway: hostAddress.optional(),
  lbAddresses: z.tuple([hostAddress, hostAddress]).optional(),
});

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/**
 * A Kubernetes qualified name with a prefix, as spec.loadBalancerClass takes it (`edgepair.io/pair`): the prefix a DNS
 * subdomain (labels of at most 63, no empty label), the name at most 63. Anything looser would be a class no Service
 * can carry (the API server refuses it), so the pair would silently serve none.
 */
const LOAD_BALANCER_CLASS =
  /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Any IPv4 network a client may come from (0.0.0.0/0 included): a Service's source ranges. */
const sourceRange = z
  .string()
  .max(64)
  .superRefine((v, ctx) => {
    const r = parseCidr(v);
    if (!r.ok) ctx.addIssue({ code: "custom", message: r.rule });
    else if (r.cidr.network.kind() !== "ipv4")
      ctx.addIssue({ code: "custom", message: "must be IPv4: Service addresses are IPv4" });
  });

const servicePool = z.strictObject({
  name: z.string().min(1).max(63).regex(DNS_LABEL),
  // CIDRs or first-last ranges (spec/pools.ts reads them; semantics.ts relates them to the rest)
  addresses: z.array(z.string().max(100)).min(1).max(64),
  type: z.enum(["private", "public"]),
});

const extraService = z.strictObject({
  // names an nftables chain and map (render/service-lb.ts): a DNS label fits both
  name: z.string().min(1).max(40).regex(DNS_LABEL),
  protocol: z.enum(["TCP", "UDP"]),
  frontend: z.strictObject({ address: hostAddress, port }),
  backend: z.strictObject({
    nodePort: port,
    nodeSelector: labelSelector.optional(),
    addresses: z.array(hostAddress).max(256).optional(),
  }),
  /** Who may connect (loadBalancerSourceRanges); absent: anyone. */
  sourceRanges: z.array(sourceRange).min(1).max(64).optional(),
});

export const loadBalancerSpecSchema = z.strictObject({
  clusterName: z.string().min(1).max(40).regex(DNS_LABEL),
  distribution: z.enum(["openshift", "talos", "generic"]),
  network,
  virtualAddresses: z.strictObject({
    api: z.array(virtualAddress).min(1),
    ingress: z.array(virtualAddress).min(1).optional(),
    nat: virtualAddress.optional(),
  }),
  apiBackend: z.strictObject({
    nodeSelector: labelSelector.optional(),
    addresses: z.array(hostAddress).optional(),
    port: port.optional(),
  }),
  ingressBackend: z
    .strictObject({
      nodeSelector: labelSelector.optional(),
      addresses: z.array(hostAddress).optional(),
      httpPort: port.optional(),
      httpsPort: port.optional(),
      healthPort: port.optional(),
      // HAProxy's config reads `"` and `'` as quotes, `#` as a comment, `$` and `${...}` as environment variables and
      // `\` as an escape: a path with one of them is not the path sent. Refused rather than escaped (no router needs them).
      healthPath: z
        .string()
        .max(256)
        .regex(/^(\/[\x21\x25\x26\x28-\x5b\x5d-\x7e]*)?$/)
        .optional(),
      proxyProtocol: z.boolean().optional(),
    })
    .optional(),
  vrrp: z
    .strictObject({
      routerId: z.number().int().min(1).max(255).optional(),
      // VRRPv3 counts in centiseconds: 0.01 s to 40.95 s.
      advertInterval: z.number().min(0.01).max(40.95).optional(),
      priority: z
        .strictObject({ primary: z.number().int().min(1).max(254), secondary: z.number().int().min(1).max(254) })
        .optional(),
    })
    .optional(),
  conntrack: z.strictObject({ port: port.optional() }).optional(),
  /** A link only the two LBs share, for VRRP adverts and conntrackd's sync: on the cluster network a host could
   *  forge the peer's address (README, "What a host on the cluster network can and cannot do"). */
  syncNetwork: z
    .strictObject({
      cidr,
      lbAddresses: z.tuple([hostAddress, hostAddress]).optional(),
    })
    .optional(),
  serviceLoadBalancers: z
    .strictObject({
      loadBalancerClass: z.string().max(253).regex(LOAD_BALANCER_CLASS).optional(),
      defaultClass: z.boolean().optional(),
      pools: z.array(servicePool).min(1).max(32),
    })
    .optional(),
  extraServices: z.array(extraService).max(256).optional(),
  healthCheck: z
    .strictObject({
      intervalSeconds: z.number().min(0.1).max(60).optional(),
      rise: z.number().int().min(1).max(10).optional(),
      fall: z.number().int().min(1).max(10).optional(),
    })
    .optional(),
  metrics: z.strictObject({ port: port.optional() }).optional(),
  /** The appliance image both LBs run; a new one switches the pair one LB at a time (agent/switch). Absent: the
   *  image the agent settings name (the one the VMs were created from). */
  image: z.string().regex(DIGEST_PINNED_REF, DIGEST_PINNED_RULE).optional(),
  platform: z.strictObject({
    type: z.enum(["libvirt", "openstack"]),
    publicNetwork: z.strictObject({
      cidr,
      gateway: hostAddress.optional(),
      lbAddresses: z.tuple([hostAddress, hostAddress]).optional(),
      nextHop: hostAddress.optional(),
    }),
  }),
});

export type LoadBalancerSpecInput = z.input<typeof loadBalancerSpecSchema>;
export type ParsedSpec = z.output<typeof loadBalancerSpecSchema>;

const nic = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/),
  mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/),
});

export const hostFactsSchema = z.strictObject({
  hostname: z.string().min(1).max(63).regex(DNS_LABEL),
  role: z.enum(["primary", "secondary"]),
  publicInterface: nic,
  privateInterface: nic,
  /** The NIC on the spec's syncNetwork; required when the spec has one. */
  syncInterface: nic.optional(),
});
