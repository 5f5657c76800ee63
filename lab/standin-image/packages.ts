/**
 * What the stand-in image installs from Debian 12 on top of debootstrap's minbase. The appliance is Fedora bootc
 * (images/Containerfile); the stand-in differs only where it must: Debian's package names, no bootc, no SELinux
 * policy (Debian boots without SELinux, so the units' SELinux steps are no-ops: edgepair-selinux-ports exits 0
 * when `selinuxenabled` says no, the restorecon steps are `-` prefixed or ConditionSecurity=selinux).
 *
 * Installed with --no-install-recommends: only what is named here and its dependencies, so the image stays small
 * and nothing runs that the appliance does not have (no ifupdown fighting NetworkManager, no exim).
 */

export const DEBIAN_SUITE = "bookworm";

export interface PackageGroup {
  why: string;
  packages: readonly string[];
}

export const STANDIN_PACKAGES: readonly PackageGroup[] = [
  {
    why: "boot: init, device manager, kernel (its initramfs-tools), the root fsck",
    packages: ["systemd-sysv", "udev", "dbus", "linux-image-amd64", "e2fsprogs"],
  },
  // cloud-guest-utils is growpart: cloud-init grows the root partition when the VM's disk is larger than the image.
  {
    why: "first boot: cloud-init (NoCloud seed) and the partition grower",
    packages: ["cloud-init", "cloud-guest-utils"],
  },
  {
    why: "the appliance's daemons (Containerfile's dnf line)",
    packages: ["network-manager", "haproxy", "keepalived", "conntrackd", "conntrack", "firewalld", "nftables"],
  },
  // Fedora's `setup` package and its nsswitch: /etc/protocols and /etc/services (firewalld's stock ipsec service
  // names protocol esp; without the file firewall-offline-cmd rejects every config), and the hostname resolving
  // without /etc/hosts (sudo asks for it).
  { why: "what Fedora's base has and Debian's minbase lacks", packages: ["netbase", "libnss-myhostname"] },
  // procps: kill, sysctl; util-linux: flock, mkfifo is coreutils; bsdutils: logger; iputils-arping: the notify
  // script's gratuitous ARP; curl: keepalived's HAProxy check; jq: the boot check reads `bootc status` with it.
  {
    why: "programs the units, the agent and the rendered files run (images/rootfs/usr/share/edgepair/required-executables)",
    packages: [
      "iproute2",
      "procps",
      "kmod",
      "util-linux",
      "bsdutils",
      "iputils-arping",
      "curl",
      "ca-certificates",
      "jq",
    ],
  },
  // Debian's policycoreutils is restorecon, selinux-utils is selinuxenabled, policycoreutils-python-utils is
  // semanage: present so the image's required-executables check passes unchanged; SELinux itself is off.
  {
    why: "the SELinux helpers the units name (inactive: no policy is loaded)",
    packages: ["policycoreutils", "selinux-utils", "policycoreutils-python-utils"],
  },
  // Node.js 18.20, while the bundle targets 20 (tools/bundle-agent): it loads the bundle (customize.sh runs
  // `--version` in the chroot, the smoke test in the booted VM) and renders a spec byte-identical to Node 20. Should
  // a Node-20-only API ever be reached, the fallback is this machine's Node 20 binary (needs only glibc/libstdc++).
  { why: "the agent's runtime", packages: ["nodejs"] },
  // sudo: the appliance (Fedora bootc) has it; the token delivery (components/token-delivery.ts) runs `sudo sh -c`.
  {
    why: "reaching the VM from the host in the end-to-end test, and the late token delivery",
    packages: ["openssh-server", "sudo"],
  },
];

export function packageNames(): string[] {
  return STANDIN_PACKAGES.flatMap((g) => g.packages);
}
