/** cloud-init documents of an LB VM: user-data (spec, host facts, agent settings, secrets) and NoCloud meta-data. */
export {
  BOOTSTRAP_COMMAND,
  BOOTSTRAP_PATHS,
  listSecretFiles,
  OPENSTACK_USER_DATA_BASE64_LIMIT,
  renderUserData,
  renderUserDataView,
  USER_DATA_BYTE_LIMIT,
} from "./user-data";
export type { BootstrapSecrets, SecretFileRef, SecretName, UserDataInput, UserDataWithSecrets } from "./user-data";
export { instanceId, renderMetaData } from "./meta-data";
export type { MetaDataInput } from "./meta-data";
