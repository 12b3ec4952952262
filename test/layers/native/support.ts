/**
 * Test support for the native machine: the probed capabilities (once, at
 * module load), a skip-message helper, and the driver stack over a native
 * machine — the same shape as `GpuSvmTest.layer` (src/testing) over the simulated one.
 */
import { Effect, Layer } from "effect"
import { builtins, loadFile } from "../../../src/cli/load.ts"
import { native } from "../../../src/cli/machines.ts"
import type { MmuEvent } from "../../../src/domain/MmuRange.ts"
import { Native, type NativeOptions } from "../../../src/layers/native/Native.ts"
import * as Runner from "../../../src/programs/ScenarioRunner.ts"
import { MmuNotifier, type NotifierHandle } from "../../../src/services/MmuNotifier.ts"
import type { GpuSvmConfigInput } from "../../../src/domain/GpuSvmConfig.ts"
import type { DriverOptions } from "../../../src/programs/DriverState.ts"
import { Driver } from "../../../src/stacks/Driver.ts"

/** The host's capabilities (probed once per test file). */
export const caps = await Effect.runPromise(Native.probe)

/** Does the host lack any of `names`? (for `it.skipIf`) */
export const lacks = (...names: ReadonlyArray<"linux" | "helperBuilt" | "userfaultfd" | "forkEvents" | "pfnVisible">): boolean =>
  names.some((n) => !caps[n])

/** The skip-message suffix naming the capabilities a test needs. */
export const needs = (...names: ReadonlyArray<string>): string => `needs capability: ${names.join(", ")}`

/** Is process `pid` gone altogether (reaped, not a zombie)? */
export const isGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return false
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH"
  }
}

/** A native machine (its construction errors as defects: tests only build it when the capabilities are there). */
export const machineLayer = (o: NativeOptions = {}) => Layer.orDie(Native.layer(o))

/** The whole driver stack over a native machine. */
export const driverLayer = (o: {
  readonly machine?: NativeOptions
  readonly policy?: "never" | "always" | "xe"
  readonly config?: GpuSvmConfigInput
  readonly driver?: DriverOptions
} = {}) =>
  Layer.orDie(Driver.native({
    machine: { devicePrivateOwner: "test-gpu", ...o.machine },
    config: { name: "test", devicePrivateOwner: "test-gpu", ...o.config },
    policy: o.policy ?? "never",
    ...(o.driver === undefined ? {} : { driver: o.driver })
  }))

/** `n` bytes of value `v`. */
export const fill = (v: number, n: number) => new Uint8Array(n).fill(v)

/** A notifier over `[start, start + length)` recording every event it gets (and moving its sequence). */
export const recorder = (start: number, length: number) =>
  Effect.gen(function*() {
    const mmu = yield* MmuNotifier
    const events: Array<{ readonly event: MmuEvent; readonly start: number; readonly end: number }> = []
    const h: NotifierHandle = yield* mmu.insert(start, length, (r, cur) =>
      Effect.andThen(Effect.sync(() => events.push({ event: r.event, start: r.start, end: r.end })), Effect.as(mmu.setSeq(h, cur), true)))
    return { h, events }
  })

/** Runs the named built-in scenarios on the native machine: what failed, one line each (empty when all passed). */
export const failedNatively = (names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const list = yield* builtins()
    const failed: Array<string> = []
    for (const name of names) {
      const b = list.find((x) => x.name === name)
      if (b === undefined) {
        failed.push(`${name}: no such built-in`)
        continue
      }
      const r = yield* Runner.run((yield* loadFile(b.file)).scenario, native, { timeoutMs: 20_000 })
      if (!r.ok) failed.push(`${name}: ${JSON.stringify([...r.violations, ...r.failures]).slice(0, 400)}`)
    }
    return failed
  })
