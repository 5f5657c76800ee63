/**
 * libvirt as Pulumi dynamic resources: Network, Volume, CloudInitDisk, Domain (see each file for what updates in
 * place and what replaces). Each carries `kind` ("libvirt:Network", ...) in its inputs and outputs so policies can
 * tell them apart; their Pulumi types are pulumi-nodejs:dynamic/libvirt:<Kind>.
 */
export {
  Network,
  NETWORK_KIND,
  networkProvider,
  checkNetwork,
  diffNetwork,
  renderNetworkXml,
  parseNetworkXml,
  observeNetwork,
} from "./network";
export type {
  NetworkArgs,
  NetworkInputs,
  NetworkOutputs,
  NetworkMode,
  NetworkDhcp,
  NetworkRoute,
  DhcpHost,
} from "./network";
export {
  Volume,
  VOLUME_KIND,
  volumeProvider,
  checkVolume,
  diffVolume,
  renderVolumeXml,
  parseVolumeXml,
} from "./volume";
export type { VolumeArgs, VolumeInputs, VolumeOutputs, VolumeFormat } from "./volume";
export {
  CloudInitDisk,
  CLOUD_INIT_DISK_KIND,
  cloudInitDiskProvider,
  checkCloudInitDisk,
  diffCloudInitDisk,
  buildSeedIso,
  contentSha256,
} from "./cloudinit";
export type { CloudInitDiskArgs, CloudInitDiskInputs, CloudInitDiskOutputs } from "./cloudinit";
export {
  Domain,
  DOMAIN_KIND,
  DOMAIN_TYPES,
  domainProvider,
  checkDomain,
  diffDomain,
  renderDomainXml,
  parseDomainXml,
  observeDomain,
  powerOff,
} from "./domain";
export type {
  DomainArgs,
  DomainInputs,
  DomainOutputs,
  DomainDisk,
  DomainNic,
  DomainCloudInit,
  DomainType,
} from "./domain";
export { resolveUri, uriProblem, DEFAULT_URI, UNKNOWN } from "./virsh";
export type { CheckFailure } from "./common";
