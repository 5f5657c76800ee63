/** The agent's cluster side: every part, and ClusterSide (cluster-side.ts) that joins them. */
export * from "./backends";
export * from "./client";
export * from "./cluster-side";
export * from "./status";
export * from "./token";
export * from "./watch";
