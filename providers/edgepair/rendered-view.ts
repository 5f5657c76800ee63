/**
 * RenderedView: what the agent will write on one LB, as a resource whose only job is to be diffed. Its inputs are
 * the rendered files (path -> mode and content, never a secret: files reference secrets by path), so
 * `pulumi preview --diff` shows a reviewer every changed line of every file. Nothing is created anywhere: the VMs
 * receive changes through the LoadBalancer custom resource, and this resource only records what was reviewed.
 * Every change is an in-place update; nothing is ever replaced.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

export interface ViewFile {
  mode: string;
  content: string;
}

export interface RenderedViewArgs {
  /** The LB this view is for (its hostname). */
  lb: pulumi.Input<string>;
  /** Renderer version that produced the files: a difference from the agent's shows in the LB's status. */
  rendererVersion: pulumi.Input<string>;
  files: pulumi.Input<Record<string, ViewFile>>;
}

interface ViewState {
  lb: string;
  rendererVersion: string;
  files: Record<string, ViewFile>;
  digest: string;
}

function digest(files: Record<string, ViewFile>): string {
  const h = createHash("sha256");
  for (const path of Object.keys(files).sort()) h.update(`${path}\0${files[path]?.mode}\0${files[path]?.content}\0`);
  return h.digest("hex");
}

const viewProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: ViewState) {
    return { id: `${inputs.lb}`, outs: { ...inputs, digest: digest(inputs.files) } };
  },
  async diff(_id: string, olds: ViewState, news: ViewState) {
    const changes =
      olds.lb !== news.lb || olds.rendererVersion !== news.rendererVersion || olds.digest !== digest(news.files);
    return { changes, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: ViewState, news: ViewState) {
    return { outs: { ...news, digest: digest(news.files) } };
  },
};

export class RenderedView extends pulumi.dynamic.Resource {
  declare public readonly lb: pulumi.Output<string>;
  declare public readonly rendererVersion: pulumi.Output<string>;
  declare public readonly files: pulumi.Output<Record<string, ViewFile>>;
  /** SHA-256 over every path, mode and content: the config hash the agent reports for the same files. */
  declare public readonly digest: pulumi.Output<string>;

  constructor(name: string, args: RenderedViewArgs, opts?: pulumi.CustomResourceOptions) {
    super(viewProvider, name, { ...args, digest: undefined }, opts, "edgepair", "RenderedView");
  }
}
