/**
 * NoCloud meta-data. cloud-init runs its per-instance modules (write_files, runcmd, SSH keys) only when the
 * instance-id changes, so the id derives from the stack and VM names alone: a re-rendered user-data (new secrets,
 * a spec edit) never makes an existing VM bootstrap again at its next reboot.
 */
import { stringify } from "yaml";
import { SpecError, type SpecProblem } from "../spec/errors";
import { DNS_LABEL } from "../spec/schema";

export interface MetaDataInput {
  stack: string;
  vm: string;
  hostname: string;
}

// cloud-init names a directory after the instance-id (/var/lib/cloud/instances/<id>): no '/' or spaces.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function instanceId(stack: string, vm: string): string {
  const problems: SpecProblem[] = [];
  for (const [path, value] of [
    ["stack", stack],
    ["vm", vm],
  ] as const) {
    if (!NAME.test(value))
      problems.push({ path, rule: "must be 1-63 of letters, digits, '_', '.', '-', starting with a letter or digit" });
  }
  if (problems.length > 0) throw new SpecError(problems);
  return `edgepair-${stack}-${vm}`;
}

export function renderMetaData(input: MetaDataInput): string {
  const id = instanceId(input.stack, input.vm);
  if (!DNS_LABEL.test(input.hostname) || input.hostname.length > 63) {
    throw new SpecError([
      {
        path: "hostname",
        rule: "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
      },
    ]);
  }
  return stringify({ "instance-id": id, "local-hostname": input.hostname }, { version: "1.1", lineWidth: 0 });
}
