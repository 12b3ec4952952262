/**
 * `Native.probe`: what this host offers the native machine, checked once per
 * Node process (the result is cached): Linux with `/proc/self/pagemap`, the
 * helper binary (built on demand), userfaultfd (`UFFD_USER_MODE_ONLY`, then
 * `/dev/userfaultfd`), fork events (`UFFD_FEATURE_EVENT_FORK` needs
 * CAP_SYS_PTRACE) and visible PFNs (CAP_SYS_ADMIN). Never fails: a missing
 * capability is `false` with a reason in `details`; `require` turns one into
 * the typed `CapabilityMissing`.
 *
 * @since 0.1.0
 */
import { existsSync } from "node:fs"
import { Effect } from "effect"
import { type Capability, CapabilityMissing } from "./Errors.ts"
import { Helper, ensureBinary, helperBinary } from "./Helper.ts"
import { ProcFiles, isPresent, pfnOf } from "./Proc.ts"

/**
 * The probed capabilities.
 *
 * @category models
 */
export interface Capabilities {
  readonly linux: boolean
  readonly helperBuilt: boolean
  readonly userfaultfd: boolean
  readonly forkEvents: boolean
  readonly pfnVisible: boolean
  /** `user-mode-only`, `dev` or `none`. */
  readonly uffdMode: string
  /** The errno name userfaultfd creation failed with ("" when it worked). */
  readonly uffdErrno: string
  /** Why each missing capability is missing. */
  readonly details: Readonly<Partial<Record<Capability, string>>>
}

const run = async (): Promise<Capabilities> => {
  const details: Partial<Record<Capability, string>> = {}
  const none = (extra: Partial<Capabilities>): Capabilities => ({
    linux: false,
    helperBuilt: false,
    userfaultfd: false,
    forkEvents: false,
    pfnVisible: false,
    uffdMode: "none",
    uffdErrno: "",
    details,
    ...extra
  })
  if (process.platform !== "linux" || !existsSync("/proc/self/pagemap")) {
    details.linux = process.platform !== "linux" ? `platform is ${process.platform}` : "/proc/self/pagemap is missing"
    return none({})
  }
  const missing = ensureBinary(helperBinary)
  if (missing !== undefined) {
    details.helperBuilt = missing.message
    return none({ linux: true })
  }
  const spawned = await Effect.runPromise(Effect.result(Helper.spawn(helperBinary, 10_000)))
  if (spawned._tag === "Failure") {
    details.helperBuilt = spawned.failure.message
    return none({ linux: true })
  }
  const h = spawned.success
  h.direct = true
  try {
    const uffd = h.hello.uffd === 1
    if (!uffd) details.userfaultfd = `userfaultfd creation failed with ${h.hello.uffdErr || `errno ${h.hello.uffdErrno}`}`
    const fork = h.hello.fork === 1
    if (!fork) details.forkEvents = "UFFD_FEATURE_EVENT_FORK refused (needs CAP_SYS_PTRACE) or no userfaultfd"
    let pfnVisible = false
    const page = await Effect.runPromise(Effect.result(h.request("mmap", [4096, 0, 0, 3])))
    if (page._tag === "Success" && page.success.ok === 1 && page.success.addr !== undefined) {
      const addr = page.success.addr
      await Effect.runPromise(Effect.result(h.request("populate", [addr, 4096, 1])))
      try {
        const proc = new ProcFiles(h.pid)
        const w = proc.pagemapRaw(addr, addr + 4096)
        proc.close()
        pfnVisible = isPresent(w[1]!) && pfnOf(w[0]!, w[1]!) !== 0
      } catch (e) {
        details.pfnVisible = `pagemap: ${String(e)}`
      }
    }
    if (!pfnVisible && details.pfnVisible === undefined) details.pfnVisible = "PFNs read as 0 in /proc/<pid>/pagemap (no CAP_SYS_ADMIN)"
    return { linux: true, helperBuilt: true, userfaultfd: uffd, forkEvents: fork, pfnVisible, uffdMode: h.hello.uffdMode, uffdErrno: h.hello.uffdErr, details }
  } finally {
    await h.kill("SIGKILL", 5_000)
  }
}

let cached: Promise<Capabilities> | undefined

/**
 * The capabilities of this host (probed once, then cached).
 *
 * @category functions
 */
export const probe: Effect.Effect<Capabilities> = Effect.promise(() => (cached ??= run()))

/**
 * Fails with `CapabilityMissing` naming the first of `caps` this host lacks.
 *
 * @category functions
 */
export const require = (...caps: ReadonlyArray<Capability>): Effect.Effect<Capabilities, CapabilityMissing> =>
  Effect.flatMap(probe, (c) => {
    for (const cap of caps) {
      if (!c[cap]) return Effect.fail(new CapabilityMissing({ capability: cap, detail: c.details[cap] ?? "missing" }))
    }
    return Effect.succeed(c)
  })
