/**
 * First program run by the real Pulumi engine (test/pulumi-engine.test.ts). Only `@pulumi/pulumi` and dynamic
 * providers: the command/random/kubernetes provider plugins cannot be built here (tools/engines/README.md).
 *
 * - `Item` keeps a JSON file per resource in the `storeDir` config directory, so create/read/update/delete act on
 *   something outside Pulumi's state: `label` and `note` update in place, a changed `zone` forces a replacement.
 *   It consumes the secret config `apiToken` (only its SHA-256 reaches the file and the outputs).
 * - `Password` stands in for random.RandomPassword: `result` is generated at create and is an additional secret
 *   output; a changed `length` forces a replacement.
 *
 * Provider methods `require` what they use inside their bodies: the providers are serialized into the state and
 * re-evaluated by pulumi-resource-pulumi-nodejs, where module-level imports would not be captured as modules.
 */
import * as pulumi from "@pulumi/pulumi";

/** Inputs and outputs the Item provider sees (secrets already unwrapped by the engine). */
interface ItemProps {
  storeDir: string;
  label: string;
  zone: string;
  note: string;
  token: string;
}

interface ItemOuts {
  storeDir: string;
  label: string;
  zone: string;
  note: string;
  tokenSha256: string;
  path: string;
}

const itemProvider: pulumi.dynamic.ResourceProvider<ItemProps, ItemOuts> = {
  async check(_olds, news) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    for (const key of ["storeDir", "label", "zone", "token"] as const) {
      if (typeof news[key] !== "string" || news[key] === "") {
        failures.push({ property: key, reason: `${key} must be a non-empty string` });
      }
    }
    return { inputs: news, failures };
  },

  async diff(_id, olds, news) {
    const replaces = (["zone", "storeDir"] as const).filter((k) => olds[k] !== news[k]);
    const crypto: typeof import("crypto") = require("crypto");
    const tokenSha256 = crypto.createHash("sha256").update(news.token).digest("hex");
    const changed =
      replaces.length > 0 || olds.label !== news.label || olds.note !== news.note || olds.tokenSha256 !== tokenSha256;
    return { changes: changed, replaces, deleteBeforeReplace: false };
  },

  async create(inputs) {
    const crypto: typeof import("crypto") = require("crypto");
    const fs: typeof import("fs") = require("fs");
    const path: typeof import("path") = require("path");
    const id = `item-${crypto.randomBytes(6).toString("hex")}`;
    const file = path.join(inputs.storeDir, `${id}.json`);
    const outs: ItemOuts = {
      storeDir: inputs.storeDir,
      label: inputs.label,
      zone: inputs.zone,
      note: inputs.note,
      tokenSha256: crypto.createHash("sha256").update(inputs.token).digest("hex"),
      path: file,
    };
    fs.mkdirSync(inputs.storeDir, { recursive: true });
    fs.writeFileSync(
      file,
      JSON.stringify({ id, label: outs.label, zone: outs.zone, note: outs.note, tokenSha256: outs.tokenSha256 }),
    );
    return { id, outs };
  },

  async read(id, props) {
    const fs: typeof import("fs") = require("fs");
    if (!props || !fs.existsSync(props.path)) {
      return {}; // gone: the engine drops it from the state
    }
    const stored = JSON.parse(fs.readFileSync(props.path, "utf8")) as Partial<ItemOuts>;
    return {
      id,
      props: {
        ...props,
        label: stored.label,
        zone: stored.zone,
        note: stored.note,
        tokenSha256: stored.tokenSha256,
      } as ItemOuts,
    };
  },

  async update(id, olds, news) {
    const crypto: typeof import("crypto") = require("crypto");
    const fs: typeof import("fs") = require("fs");
    const outs: ItemOuts = {
      ...olds,
      label: news.label,
      note: news.note,
      tokenSha256: crypto.createHash("sha256").update(news.token).digest("hex"),
    };
    fs.writeFileSync(
      olds.path,
      JSON.stringify({ id, label: outs.label, zone: outs.zone, note: outs.note, tokenSha256: outs.tokenSha256 }),
    );
    return { outs };
  },

  async delete(_id, props) {
    const fs: typeof import("fs") = require("fs");
    fs.rmSync(props.path, { force: true });
  },
};

interface ItemArgs {
  storeDir: pulumi.Input<string>;
  label: pulumi.Input<string>;
  zone: pulumi.Input<string>;
  note: pulumi.Input<string>;
  token: pulumi.Input<string>;
}

class Item extends pulumi.dynamic.Resource {
  declare public readonly label: pulumi.Output<string>;
  declare public readonly zone: pulumi.Output<string>;
  declare public readonly note: pulumi.Output<string>;
  declare public readonly tokenSha256: pulumi.Output<string>;
  declare public readonly path: pulumi.Output<string>;

  constructor(name: string, args: ItemArgs, opts?: pulumi.CustomResourceOptions) {
    super(itemProvider, name, { ...args, tokenSha256: undefined, path: undefined }, opts, "edgepair", "Item");
  }
}

interface PasswordProps {
  length: number;
}

interface PasswordOuts {
  length: number;
  result: string;
}

const passwordProvider: pulumi.dynamic.ResourceProvider<PasswordProps, PasswordOuts> = {
  async diff(_id, olds, news) {
    const replaces = olds.length !== news.length ? ["length"] : [];
    return { changes: replaces.length > 0, replaces };
  },

  async create(inputs) {
    const crypto: typeof import("crypto") = require("crypto");
    const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let result = "";
    while (result.length < inputs.length) {
      const byte = crypto.randomBytes(1)[0];
      if (byte < 256 - (256 % alphabet.length)) {
        result += alphabet[byte % alphabet.length];
      }
    }
    return { id: `pw-${crypto.randomBytes(6).toString("hex")}`, outs: { length: inputs.length, result } };
  },
};

class Password extends pulumi.dynamic.Resource {
  declare public readonly length: pulumi.Output<number>;
  declare public readonly result: pulumi.Output<string>;

  constructor(name: string, args: { length: pulumi.Input<number> }, opts?: pulumi.CustomResourceOptions) {
    super(
      passwordProvider,
      name,
      { ...args, result: undefined },
      { ...opts, additionalSecretOutputs: ["result"] },
      "edgepair",
      "Password",
    );
  }
}

const config = new pulumi.Config();

const item = new Item("item", {
  storeDir: config.require("storeDir"),
  label: config.require("label"),
  zone: config.require("zone"),
  note: config.require("marker"),
  token: config.requireSecret("apiToken"),
});

const password = new Password("password", { length: config.getNumber("passwordLength") ?? 24 });

export const itemId = item.id;
export const itemLabel = item.label;
export const itemZone = item.zone;
export const itemPath = item.path;
export const itemTokenSha256 = item.tokenSha256;
export const marker = item.note;
export const passwordLength = password.length;
export const passwordValue = password.result;
