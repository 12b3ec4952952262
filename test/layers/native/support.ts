/**
 * Test support for the native machine: the probed capabilities (once, at
 * module load), a skip-message helper, and the driver stack over a native
 * machine — the same shape as `GpuSvmTest.layer` (src/testing) over the simulated one.
 */
import { Layer } from "effect"
import { Native, type NativeOptions } from "../../../src/layers/native/Native.ts"
import { Effect } from "effect"
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
