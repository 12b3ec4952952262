/**
 * Test support for the native machine: the probed capabilities (once, at
 * module load), a skip-message helper, and the driver stack over a native
 * machine — the same shape as `test/support/driver.ts` over the simulated one.
 */
import { Layer } from "effect"
import { Native, type NativeOptions } from "../../../src/layers/native/Native.ts"
import { Effect } from "effect"
import { Driver } from "../../../src/programs/Driver.ts"
import type { DriverOptions } from "../../../src/programs/DriverState.ts"
import * as MigrationPolicy from "../../../src/programs/MigrationPolicy.ts"

/** The host's capabilities (probed once per test file). */
export const caps = await Effect.runPromise(Native.probe)

/** Does the host lack any of `names`? (for `it.skipIf`) */
export const lacks = (...names: ReadonlyArray<"linux" | "helperBuilt" | "userfaultfd" | "forkEvents" | "pfnVisible">): boolean =>
  names.some((n) => !caps[n])

/** The skip-message suffix naming the capabilities a test needs. */
export const needs = (...names: ReadonlyArray<string>): string => `needs capability: ${names.join(", ")}`

/** A native machine (its construction errors as defects: tests only build it when the capabilities are there). */
export const machineLayer = (o: NativeOptions = {}) => Layer.orDie(Native.layer(o))

/** The whole driver stack over a native machine. */
export const driverLayer = (o: {
  readonly machine?: NativeOptions
  readonly policy?: "never" | "always" | "xe"
  readonly config?: Record<string, unknown>
  readonly driver?: DriverOptions
} = {}) =>
  Driver.layer({ name: "test", devicePrivateOwner: "test-gpu", ...o.config }, o.driver).pipe(
    Layer.provideMerge(Layer.unwrap(Effect.sync(() => {
      // one machine object: the policy (which reads the machine's pagemaps) is built over the same, memoised, machine
      const machine = machineLayer({ devicePrivateOwner: "test-gpu", ...o.machine })
      return Layer.mergeAll(machine, MigrationPolicy.fromName(o.policy ?? "never").pipe(Layer.provide(machine)))
    })))
  )
