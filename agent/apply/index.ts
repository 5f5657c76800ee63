/** Writing rendered files safely and reloading only what changed (issue 8, item 2). */
export {
  applyFiles,
  readApplyState,
  APPLY_STATE_FILE,
  type ApplyOptions,
  type ApplyReport,
  type ApplyState,
  type Rejection,
} from "./apply";
export {
  defaultValidators,
  validateCandidates,
  checkSysctlText,
  type StagedCandidate,
  type ValidateContext,
  type Validator,
  type ValidatorOptions,
  type Verdict,
} from "./validate";
export {
  spawnRunner,
  planReloads,
  runReloads,
  type CommandRunner,
  type CommandResult,
  type RunOptions,
  type ReloadPlan,
  type ReloadResult,
} from "./reload";
export { sha256, resolveOwner, isStagedName } from "./write";
