/**
 * Typed errors of the native machine (native-linux.md §5): what is missing on
 * this host, and what went wrong with the helper process. Service calls keep
 * the contract's errors (`BadAddress`, `InvalidArgument`, …) and name these in
 * their `reason`; these are the errors of `Native.probe`, `Native.layer` and
 * the native-only members.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The capabilities `Native.probe` checks, by name.
 *
 * @category constants
 */
export const CAPABILITIES = ["linux", "helperBuilt", "userfaultfd", "forkEvents", "pfnVisible"] as const

/**
 * One capability name.
 *
 * @category models
 */
export type Capability = (typeof CAPABILITIES)[number]

/**
 * The platform is not Linux, or `/proc/self/pagemap` is missing.
 *
 * @category errors
 */
export class NotLinux extends Schema.TaggedError<NotLinux>()("NotLinux", {
  reason: Schema.String
}) {
  override get message(): string {
    return `NotLinux: ${this.reason}`
  }
}

/**
 * No compiler, or the helper's build or spawn failed (`stage` says which).
 *
 * @category errors
 */
export class HelperUnavailable extends Schema.TaggedError<HelperUnavailable>()("HelperUnavailable", {
  stage: Schema.String,
  stderr: Schema.String
}) {
  override get message(): string {
    return `HelperUnavailable (${this.stage}): ${this.stderr}`
  }
}

/**
 * userfaultfd could not be created (ENOSYS: off or seccomp; EPERM/EACCES: both creation paths refused).
 *
 * @category errors
 */
export class UffdUnavailable extends Schema.TaggedError<UffdUnavailable>()("UffdUnavailable", {
  errno: Schema.String
}) {
  override get message(): string {
    return `UffdUnavailable: userfaultfd creation failed with ${this.errno}`
  }
}

/**
 * PFNs read as 0 in `/proc/<pid>/pagemap` (no CAP_SYS_ADMIN): no physical addresses for the DMA oracle.
 *
 * @category errors
 */
export class PfnHidden extends Schema.TaggedError<PfnHidden>()("PfnHidden", {
  reason: Schema.String
}) {
  override get message(): string {
    return `PfnHidden: ${this.reason}`
  }
}

/**
 * A capability the caller asked for is missing; `capability` names it, `detail` says why.
 *
 * @category errors
 */
export class CapabilityMissing extends Schema.TaggedError<CapabilityMissing>()("CapabilityMissing", {
  capability: Schema.Literals(CAPABILITIES),
  detail: Schema.String
}) {
  override get message(): string {
    return `CapabilityMissing: ${this.capability}: ${this.detail}`
  }
}

/**
 * The helper process failed mid-operation: it exited or was killed (`died`),
 * its event stream closed (`closed`), or a request got no answer in time
 * (`timeout`), or a fork child could not be made or reached (`fork`).
 *
 * @category errors
 */
export class HelperFailed extends Schema.TaggedError<HelperFailed>()("HelperFailed", {
  stage: Schema.Literals(["died", "closed", "timeout", "protocol", "io", "fork"]),
  detail: Schema.String
}) {
  override get message(): string {
    return `HelperFailed (${this.stage}): ${this.detail}`
  }
}

/**
 * Every error of the native layer's construction.
 *
 * @category models
 */
export type NativeError = NotLinux | HelperUnavailable | UffdUnavailable | PfnHidden | CapabilityMissing | HelperFailed
